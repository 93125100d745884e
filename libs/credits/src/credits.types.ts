/** `void`: a credit hold in doubt that was never written (amount 0; see settleHoldInDoubt). */
export type LedgerEventType =
  'grant' | 'debit' | 'refund' | 'settle' | 'admin_adjustment' | 'cycle_reset' | 'void';

/** One row of credit_ledger; amounts are signed (a debit is negative). */
export interface LedgerEntry {
  id: string;
  userId: string;
  eventType: LedgerEventType;
  amount: number;
  balanceAfter: number;
  idempotencyKey: string | null;
  requestId: string | null;
  description: string | null;
  createdAt: Date;
}

/** The result of a write that may have been a replay of an earlier one with the same key. */
export interface LedgerWrite {
  entry: LedgerEntry;
  /** True when the idempotency key had already been used: nothing new was written. */
  replayed: boolean;
}

export interface CreditAccount {
  userId: string;
  balance: number;
  baseQuota: number;
  billingCycleEnd: Date | null;
}

/**
 * Credits held for one request until it settles or is refunded. A plain object so that it can
 * travel with an async job to another replica; `id` is the debit's ledger row (null when the
 * model is free and nothing was held).
 */
export interface Reservation {
  id: string | null;
  userId: string;
  amount: number;
  requestId: string | null;
  /** Balance right after the hold (null for a free request). */
  balance: number | null;
}

/** How a reservation was closed. */
export interface ReservationClose {
  /** Net credits the request cost in the end. */
  charged: number;
  /** Credits given back by this close (negative when the usage exceeded the hold). */
  returned: number;
  balance: number | null;
  /** True when the reservation had been closed before (settle after refund, retry, …). */
  alreadyClosed: boolean;
}

export interface BalanceChange {
  userId: string;
  oldBalance: number;
  newBalance: number;
}

export interface CreditAudit {
  balance_mismatches: { user_id: string; balance: number; ledger_sum: number }[];
  negative_balances: { user_id: string; balance: number }[];
  negative_ledger_rows: { id: string; user_id: string; balance_after: number }[];
  duplicate_idempotency_keys: { user_id: string; idempotency_key: string; count: number }[];
  open_reservations: {
    reservation_id: string;
    user_id: string;
    amount: number;
    request_id: string | null;
    created_at: string;
  }[];
  healthy: boolean;
}
