import { ApiError } from '@app/observability';

/** 402 before any upstream call: the balance cannot cover the request's maximum price. */
export function insufficientCredits(required: number, balance: number): ApiError {
  return new ApiError(
    402,
    'insufficient_credits',
    'insufficient_credits',
    `Insufficient credits: this request may cost up to ${required} credits and the balance is ${balance}`,
  );
}

/**
 * Same idempotency key, different request: the client has a bug; never run it. `param` names
 * where the key came from: the header, or a body field (admin credit writes).
 */
export function idempotencyConflict(param = 'Idempotency-Key'): ApiError {
  return new ApiError(
    409,
    'conflict_error',
    'idempotency_conflict',
    `This ${param} was already used with a different request`,
    param,
  );
}

/** The first request with this key is still running and did not finish while we waited. */
export function idempotencyInProgress(): ApiError {
  return new ApiError(
    409,
    'conflict_error',
    'idempotency_in_progress',
    'A request with this Idempotency-Key is still in progress; retry shortly',
    'Idempotency-Key',
    { 'retry-after': '1' },
  );
}

export function userNotFound(userId: string): ApiError {
  return ApiError.notFound(`User ${userId} not found`, 'user_not_found', 'user_id');
}

/** A Postgres unique violation on a given constraint (TypeORM copies the driver's fields). */
export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  const e = err as {
    code?: string;
    constraint?: string;
    driverError?: { code?: string; constraint?: string };
  };
  const code = e?.code ?? e?.driverError?.code;
  const name = e?.constraint ?? e?.driverError?.constraint;
  return code === '23505' && (constraint === undefined || name === constraint);
}

export function isForeignKeyViolation(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  return (e?.code ?? e?.driverError?.code) === '23503';
}

export function isCheckViolation(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  return (e?.code ?? e?.driverError?.code) === '23514';
}

/**
 * The largest balance: Number.MAX_SAFE_INTEGER, above which a bigint read into a JS number (and
 * a JSON number in a client) is rounded. Postgres enforces it (migration 1732300016000).
 */
export const MAX_BALANCE = Number.MAX_SAFE_INTEGER;

/** The CHECK constraints of migration 1732300016000 that keep credits within MAX_BALANCE. */
const BALANCE_LIMIT_CONSTRAINTS = new Set([
  'user_credits_balance_max',
  'user_credits_base_quota_max',
  'credit_ledger_balance_after_max',
  'credit_ledger_amount_max',
]);

/** 400: the write would take a balance above MAX_BALANCE; nothing was written. */
export function balanceLimitExceeded(amount: number, param = 'amount'): ApiError {
  return ApiError.badRequest(
    `Adding ${amount} credits would take the balance above the maximum balance (${MAX_BALANCE} credits)`,
    param,
    'balance_limit_exceeded',
  );
}

export function isBalanceLimitViolation(err: unknown): boolean {
  const e = err as { constraint?: string; driverError?: { constraint?: string } };
  const name = e?.constraint ?? e?.driverError?.constraint;
  return isCheckViolation(err) && name !== undefined && BALANCE_LIMIT_CONSTRAINTS.has(name);
}
