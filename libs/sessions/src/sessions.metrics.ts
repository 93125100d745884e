import { counter, gauge } from '@app/observability';

/** Sessions per provider and status, from the database (every replica reports the same value). */
export const activeSessions = gauge(
  'gateway_active_sessions',
  'Upstream sessions by provider and status',
  ['provider', 'status'] as const,
);

/** One credential handed to an upstream call; flat for an hour means rotation has stalled. */
export const sessionRotations = counter(
  'gateway_session_rotations_total',
  'Sessions taken from the pool for upstream calls',
  ['provider'] as const,
);
