import { Module } from '@nestjs/common';
import { CreditsPlugin } from './credits.plugin';
import { IdempotencyPlugin } from './idempotency.plugin';

/**
 * Puts billing and Idempotency-Key handling into the generation pipeline (the plugins find
 * GenerationPipeline at init). Separate from CreditsModule so that the ledger itself does not
 * depend on generation.
 */
@Module({
  providers: [CreditsPlugin, IdempotencyPlugin],
})
export class CreditsPipelineModule {}
