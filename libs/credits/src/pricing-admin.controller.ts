import { Body, Controller, Delete, Get, HttpCode, Param, Put, UseGuards } from '@nestjs/common';
import { AdminGuard, AuditService, CurrentAdmin } from '@app/auth';
import type { AdminIdentity } from '@app/auth';
import { ApiError } from '@app/observability';
import { parseDto, putPriceDto } from './credits.dto';
import { toModelPrice } from './pricing-file';
import { PricingService } from './pricing.service';
import { priceView } from './credits.views';

/** Prices per model. An edit reaches every replica at once (Redis pub/sub) and survives restarts. */
@Controller('admin/pricing')
@UseGuards(AdminGuard)
export class PricingAdminController {
  constructor(
    private readonly pricing: PricingService,
    private readonly audit: AuditService,
  ) {}

  @Get()
  async list() {
    return { data: (await this.pricing.list()).map(priceView), next_cursor: null };
  }

  /** Replaces the model's price (fields left out are 0). */
  @Put(':model')
  async put(
    @Param('model') model: string,
    @Body() body: unknown,
    @CurrentAdmin() admin: AdminIdentity,
  ) {
    if (model.length === 0 || model.length > 200)
      throw ApiError.badRequest('model must be 1 to 200 characters', 'model');
    const input = parseDto(putPriceDto, body);
    const stored = await this.pricing.set(toModelPrice({ model, ...input }));
    await this.audit.record(admin.username, 'pricing.update', model, { ...input });
    return priceView(stored);
  }

  /** Removes the price: the model becomes free (a price in PROVIDERS_FILE returns at the next boot). */
  @Delete(':model')
  @HttpCode(204)
  async remove(@Param('model') model: string, @CurrentAdmin() admin: AdminIdentity) {
    if (!(await this.pricing.remove(model)))
      throw ApiError.notFound(`No price for model ${model}`, 'price_not_found', 'model');
    await this.audit.record(admin.username, 'pricing.delete', model, {});
  }
}
