import { Controller, Get, Query, UseGuards } from '@nestjs/common';
import { ApiKeyGuard, CurrentPrincipal } from '@app/auth';
import type { Principal } from '@app/auth';
import { decodeCursor, parseLimit } from './credits.dto';
import { CreditsService } from './credits.service';
import { accountView, ledgerPageView } from './credits.views';

/** A consumer's own credits (API key). */
@Controller('v1/credits')
@UseGuards(ApiKeyGuard)
export class CreditsController {
  constructor(private readonly credits: CreditsService) {}

  @Get()
  async balance(@CurrentPrincipal() principal: Principal) {
    return accountView(await this.credits.balance(principal.userId));
  }

  @Get('ledger')
  async ledger(
    @CurrentPrincipal() principal: Principal,
    @Query('limit') limit?: string,
    @Query('cursor') cursor?: string,
  ) {
    const size = parseLimit(limit);
    const rows = await this.credits.ledger(principal.userId, size + 1, decodeCursor(cursor));
    return ledgerPageView(rows, size);
  }
}
