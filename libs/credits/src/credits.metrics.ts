import { counter } from '@app/observability';

export const creditsSpent = counter(
  'gateway_credits_spent_total',
  'Credits charged for generations (net of refunds)',
);

/**
 * Why a credit operation failed: insufficient_credits (402), reserve_error, settle_error,
 * refund_error (the database refused or was unreachable), hold_in_doubt (a hold was sent and
 * never answered: it is refunded, or voided, by the retry tick).
 */
export const creditFailures = counter(
  'gateway_credit_failures_total',
  'Credit operations that failed, by reason',
  ['reason'],
);

export const creditHoldsOverlapped = counter(
  'gateway_credit_holds_overlapped_total',
  'Credit holds left to commit while the upstream call started (the answer waited for them)',
);
