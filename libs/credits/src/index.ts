export { CreditsModule } from './credits.module';
export { CreditsService, OPEN_RESERVATION_MINUTES } from './credits.service';
export type { ReserveInput } from './credits.service';
export { PricingService } from './pricing.service';
export { PricingFileError } from './pricing-file';
export type { BillableKind } from './pricing.service';
export {
  IdempotencyService,
  canonicalJson,
  parseIdempotencyKey,
  requestHashOf,
} from './idempotency.service';
export type { IdempotencyClaim, IdempotentRequest } from './idempotency.service';
export type { StoredResponse } from './idempotency.repository';
export {
  DEFAULT_MAX_COMPLETION_TOKENS,
  estimatePromptTokens,
  estimateTokens,
  maxChatUsage,
  maxImageUsage,
  priceOf,
} from './pricing.math';
export type { ModelPrice, Usage } from './pricing.math';
export { insufficientCredits, idempotencyConflict } from './credits.errors';
export type { CreditAccount, LedgerEntry, Reservation, ReservationClose } from './credits.types';
// Last on purpose: it loads the generation plugins, and libs/generation imports this index.
export { CreditsPipelineModule } from './credits-pipeline.module';
