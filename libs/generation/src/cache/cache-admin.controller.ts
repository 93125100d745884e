import { Controller, Delete, Get, Query, UseGuards } from '@nestjs/common';
import { AdminGuard, AuditService, CurrentAdmin, requireUuid } from '@app/auth';
import type { AdminIdentity } from '@app/auth';
import { ApiError } from '@app/observability';
import { CacheStats, ResponseCacheService } from './response-cache.service';

/** GET /admin/cache/stats and DELETE /admin/cache[?user_id=&model=] (seed 001/003 procedures). */
@Controller('admin/cache')
@UseGuards(AdminGuard)
export class CacheAdminController {
  constructor(
    private readonly cache: ResponseCacheService,
    private readonly audit: AuditService,
  ) {}

  @Get('stats')
  stats(): Promise<CacheStats> {
    return this.cache.stats();
  }

  @Delete()
  async clear(
    @CurrentAdmin() admin: AdminIdentity,
    @Query('user_id') userId?: string,
    @Query('model') model?: string,
  ): Promise<{ deleted: number; user_id: string | null; model: string | null }> {
    const selector = {
      userId: userId === undefined ? undefined : requireUuid(userId, 'user_id'),
      model: model === undefined ? undefined : requireModel(model),
    };
    const deleted = await this.cache.clear(selector);
    await this.audit.record(admin.username, 'cache.clear', null, {
      user_id: selector.userId ?? null,
      model: selector.model ?? null,
      deleted,
    });
    return { deleted, user_id: selector.userId ?? null, model: selector.model ?? null };
  }
}

function requireModel(model: string): string {
  if (model.length === 0 || model.length > 200)
    throw ApiError.badRequest('model must be 1 to 200 characters', 'model');
  return model;
}
