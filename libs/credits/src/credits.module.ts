import { Global, Module } from '@nestjs/common';
import { CreditsAdminController } from './credits-admin.controller';
import { CreditsController } from './credits.controller';
import { CreditsRepository } from './credits.repository';
import { CreditsScheduler } from './credits.scheduler';
import { CreditsService } from './credits.service';
import { IdempotencyRepository } from './idempotency.repository';
import { IdempotencyService } from './idempotency.service';
import { LedgerBatcher } from './ledger-batcher';
import { PricingAdminController } from './pricing-admin.controller';
import { PricingRepository } from './pricing.repository';
import { PricingService } from './pricing.service';

/**
 * Pricing, the ledger (reserve / settle / refund, grants, cycle resets, reconciliation) and
 * Idempotency-Key handling. Global so that generation, jobs and auth can inject the services
 * without import cycles.
 */
@Global()
@Module({
  controllers: [CreditsController, CreditsAdminController, PricingAdminController],
  providers: [
    CreditsRepository,
    LedgerBatcher,
    PricingRepository,
    IdempotencyRepository,
    PricingService,
    CreditsService,
    IdempotencyService,
    CreditsScheduler,
  ],
  exports: [CreditsService, PricingService, IdempotencyService],
})
export class CreditsModule {}
