import { counter } from '@app/observability';

export const creditsSpent = counter(
  'gateway_credits_spent_total',
  'Credits charged for generations (net of refunds)',
);

/**
 * Why a credit operation failed: insufficient_credits (402), reserve_error, settle_error,
 * refund_error (the database refused or was unreachable).
 */
export const creditFailures = counter(
  'gateway_credit_failures_total',
  'Credit operations that failed, by reason',
  ['reason'],
);
