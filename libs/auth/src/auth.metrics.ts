import { counter } from '@app/observability';

export type AuthFailureReason =
  | 'missing'
  | 'malformed'
  | 'unknown'
  | 'revoked'
  | 'expired'
  | 'scope'
  | 'bad_jwt'
  | 'login_failed';

export const authFailuresTotal = counter(
  'gateway_auth_failures_total',
  'Rejected authentication attempts by reason',
  ['reason'],
);

export function countAuthFailure(reason: AuthFailureReason): void {
  authFailuresTotal.inc({ reason });
}
