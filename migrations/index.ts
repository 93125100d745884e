import { InitialSchema1732300000000 } from './1732300000000-initial-schema';
import { CreditsPricingIdempotency1732300006000 } from './1732300006000-credits-pricing-idempotency';
import { GenerationJobQueue1732300008000 } from './1732300008000-generation-job-queue';
import { CreditsLedgerBatch1732300010000 } from './1732300010000-credits-ledger-batch';
import { CreditsLedgerBatchRows1732300012000 } from './1732300012000-credits-ledger-batch-rows';
import { TimeOrderedIds1732300014000 } from './1732300014000-time-ordered-ids';
import { BalanceLimit1732300016000 } from './1732300016000-balance-limit';
import { LedgerHoldIds1732300018000 } from './1732300018000-ledger-hold-ids';

/** Every migration in order. Listed explicitly so the same list works from ts and from dist. */
export const MIGRATIONS = [
  InitialSchema1732300000000,
  CreditsPricingIdempotency1732300006000,
  GenerationJobQueue1732300008000,
  CreditsLedgerBatch1732300010000,
  CreditsLedgerBatchRows1732300012000,
  TimeOrderedIds1732300014000,
  BalanceLimit1732300016000,
  LedgerHoldIds1732300018000,
];
