export type BreakerState = 'closed' | 'open' | 'half_open';

/** What an upstream attempt says about the provider's health. */
export type BreakerOutcome =
  /** The upstream answered (2xx, or the client's own 4xx): it is alive. */
  | 'success'
  /** An upstream fault: 5xx, timeout, connection error, broken body. */
  | 'failure'
  /** Says nothing about the provider (client went away, upstream 429/401/403): counts neither way. */
  | 'neutral';

export interface BreakerSettings {
  failureThreshold: number;
  openMs: number;
  halfOpenSuccesses: number;
}

/** The shared state of one breaker, as stored in Redis (or in memory during a fallback). */
export interface BreakerRecord {
  state: BreakerState;
  /** Consecutive upstream failures. */
  failures: number;
  /** Successes counted while half-open. */
  halfOpenSuccesses: number;
  openedAt: number | null;
  openUntil: number | null;
  /** Opened by an operator (force-open) rather than by failures. */
  forced: boolean;
}

export interface BreakerSample {
  at: number;
  latencyMs: number;
  ok: boolean;
}

export interface BreakerAdmission {
  allowed: boolean;
  /** The state after admission (an elapsed open period becomes half_open here). */
  state: BreakerState;
  from: BreakerState;
  /** How long until an open breaker lets a probe through. */
  retryAfterMs: number;
}

export interface BreakerTransition {
  from: BreakerState;
  to: BreakerState;
}

/** What operators see in GET /admin/circuit-breakers (DESIGN §5). */
export interface BreakerView {
  name: string;
  state: BreakerState;
  failures: number;
  successRate: number | null;
  p95LatencyMs: number | null;
  openedAt: string | null;
  nextAttemptAt: string | null;
  forced: boolean;
  samples: number;
}

export const CLOSED_RECORD: BreakerRecord = Object.freeze({
  state: 'closed',
  failures: 0,
  halfOpenSuccesses: 0,
  openedAt: null,
  openUntil: null,
  forced: false,
}) as BreakerRecord;
