export type SessionStatus = 'healthy' | 'quarantined' | 'expired' | 'disabled';

export const SESSION_STATUSES: readonly SessionStatus[] = [
  'healthy',
  'quarantined',
  'expired',
  'disabled',
];

/**
 * What one upstream call said about the credential it used:
 * - success: 2xx;
 * - failure: 5xx, timeout, connection error (counts toward quarantine);
 * - unauthorized: upstream 401/403 — the credential is dead, the session expires;
 * - rate_limited: upstream 429 — rest the session briefly, it is not broken;
 * - neutral: the client's own 4xx, which says nothing about the credential.
 */
export type SessionOutcome = 'success' | 'failure' | 'unauthorized' | 'rate_limited' | 'neutral';

export interface SessionHealthPolicy {
  /** How many recent outcomes the rolling failure rate looks at. */
  window: number;
  /** No quarantine before this many outcomes are in the window. */
  minSample: number;
  /** Failure rate (0..1) at or above which a healthy session is quarantined. */
  threshold: number;
}

export interface SessionHealthState {
  status: SessionStatus;
  /** Oldest first; 's' success, 'f' failure. */
  recentOutcomes: string;
}

export interface SessionHealthChange {
  status: SessionStatus;
  recentOutcomes: string;
  failureRate: number;
  successDelta: number;
  failureDelta: number;
  /** Set when the status changed because of this outcome. */
  transition?: 'quarantined' | 'expired';
  cooldown: boolean;
}

/** Maps an upstream HTTP status (or a transport error) to what it says about the credential. */
export function outcomeForStatus(status: number | undefined): SessionOutcome {
  if (status === undefined || status >= 500) return 'failure';
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 429) return 'rate_limited';
  if (status >= 400) return 'neutral';
  return 'success';
}

export function failureRate(outcomes: string): number {
  if (outcomes.length === 0) return 0;
  let failures = 0;
  for (const c of outcomes) if (c === 'f') failures++;
  return failures / outcomes.length;
}

/** The next health of a session after one outcome. Pure, so the rules are unit-tested. */
export function applyOutcome(
  state: SessionHealthState,
  outcome: SessionOutcome,
  policy: SessionHealthPolicy,
): SessionHealthChange {
  const keep = (recentOutcomes: string) => recentOutcomes.slice(-policy.window);
  if (outcome === 'neutral' || outcome === 'rate_limited') {
    const recentOutcomes = keep(state.recentOutcomes);
    return {
      status: state.status,
      recentOutcomes,
      failureRate: failureRate(recentOutcomes),
      successDelta: 0,
      failureDelta: 0,
      cooldown: outcome === 'rate_limited',
    };
  }
  const recentOutcomes = keep(state.recentOutcomes + (outcome === 'success' ? 's' : 'f'));
  const rate = failureRate(recentOutcomes);
  const change: SessionHealthChange = {
    status: state.status,
    recentOutcomes,
    failureRate: rate,
    successDelta: outcome === 'success' ? 1 : 0,
    failureDelta: outcome === 'success' ? 0 : 1,
    cooldown: false,
  };
  // An operator's decision (disabled) and a dead credential (expired) are never undone here.
  if (state.status === 'disabled' || state.status === 'expired') return change;
  if (outcome === 'unauthorized') {
    change.status = 'expired';
    change.transition = 'expired';
  } else if (
    state.status === 'healthy' &&
    outcome === 'failure' &&
    recentOutcomes.length >= policy.minSample &&
    rate >= policy.threshold
  ) {
    change.status = 'quarantined';
    change.transition = 'quarantined';
  }
  return change;
}
