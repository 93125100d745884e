import { BOOTSTRAP_GRANT_KEY, INITIAL_GRANT_KEY } from '@app/auth';
import { ApiError } from '@app/observability';

/*
 * Idempotency keys the gateway writes to credit_ledger.idempotency_key itself. The ledger's
 * UNIQUE (user_id, idempotency_key) makes them share one namespace with the keys admins send,
 * so an admin grant keyed "initial-grant" would "replay" the user's base-quota row and grant
 * nothing. Admin keys in this namespace are therefore refused.
 */

// INITIAL_GRANT_KEY (a user's base quota at creation) and BOOTSTRAP_GRANT_KEY (the bootstrap
// user's BOOTSTRAP_CREDITS) are libs/auth's, which writes them.
/** A keyed hold: `reserve:<key>` (async jobs hold `reserve:job:<job id>`). */
export const RESERVE_KEY_PREFIX = 'reserve:';
/** The settle or refund of a hold: `close:<debit id>` (also built by the ledger batch SQL). */
export const CLOSE_KEY_PREFIX = 'close:';
/** A billing-cycle reset: `cycle_reset:<cycle end>` (built in CreditsRepository.resetDueCycles). */
export const CYCLE_RESET_KEY_PREFIX = 'cycle_reset:';

const SYSTEM_KEYS: readonly string[] = [INITIAL_GRANT_KEY, BOOTSTRAP_GRANT_KEY];
const SYSTEM_PREFIXES: readonly string[] = [
  RESERVE_KEY_PREFIX,
  CLOSE_KEY_PREFIX,
  CYCLE_RESET_KEY_PREFIX,
];

function isSystemLedgerKey(key: string): boolean {
  return SYSTEM_KEYS.includes(key) || SYSTEM_PREFIXES.some((prefix) => key.startsWith(prefix));
}

/** 400 for an admin's idempotency key that could collide with a key the gateway writes. */
export function assertAdminLedgerKey(key: string | undefined): void {
  if (key === undefined || !isSystemLedgerKey(key)) return;
  throw ApiError.badRequest(
    `idempotency_key "${key}" is reserved for the gateway's own ledger entries ` +
      `(${[...SYSTEM_KEYS, ...SYSTEM_PREFIXES.map((p) => `${p}…`)].join(', ')}); choose another key`,
    'idempotency_key',
    'invalid_idempotency_key',
  );
}
