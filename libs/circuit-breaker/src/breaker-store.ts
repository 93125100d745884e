import {
  BreakerAdmission,
  BreakerOutcome,
  BreakerRecord,
  BreakerSample,
  BreakerSettings,
  BreakerState,
  BreakerTransition,
} from './breaker.types';

export interface BreakerSnapshot {
  record: BreakerRecord;
  samples: BreakerSample[];
}

export interface AdmitRequest {
  now: number;
  permitId: string;
  maxProbes: number;
  /** A probe slot not given back within this time is freed (the replica may have died). */
  permitTtlMs: number;
}

export interface OutcomeRequest {
  now: number;
  permitId: string;
  outcome: BreakerOutcome;
  latencyMs: number;
  settings: BreakerSettings;
}

/** A success buffered in process before it is recorded (see CircuitBreakerService). */
export interface SuccessSample {
  at: number;
  latencyMs: number;
}

/** Where breaker state lives: Redis (shared by replicas) or this process (fallback). */
export interface BreakerStore {
  admit(name: string, request: AdmitRequest): Promise<BreakerAdmission>;
  record(name: string, request: OutcomeRequest): Promise<BreakerTransition>;
  /**
   * Records successes of attempts admitted while closed (oldest first): samples, and in closed
   * state the failures older than the newest of them are undone. Never a transition.
   */
  recordSuccesses(name: string, successes: SuccessSample[]): Promise<BreakerState>;
  read(names: string[]): Promise<Map<string, BreakerSnapshot>>;
  reset(name: string): Promise<BreakerTransition>;
  forceOpen(name: string, now: number, durationMs: number): Promise<BreakerTransition>;
}

/** Samples kept per breaker for success rate and p95 latency. */
export const SAMPLE_LIMIT = 200;
