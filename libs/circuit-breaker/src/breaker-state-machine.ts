import {
  BreakerOutcome,
  BreakerRecord,
  BreakerSample,
  BreakerSettings,
  BreakerState,
} from './breaker.types';

/**
 * The breaker's rules as pure functions (DESIGN §6). The memory store runs them directly; the
 * Redis store runs the same rules as Lua (breaker.scripts.ts) so that replicas update one shared
 * record atomically. breaker-store.spec.ts runs one scenario table against both.
 */

/** An open breaker whose open period has elapsed reads half_open, even before any request. */
export function effectiveState(record: BreakerRecord, now: number): BreakerState {
  if (record.state === 'open' && record.openUntil !== null && now >= record.openUntil)
    return 'half_open';
  return record.state;
}

export interface AdmitResult {
  allowed: boolean;
  record: BreakerRecord;
  from: BreakerState;
  retryAfterMs: number;
  /** True when a half-open probe slot was taken and must be given back by `record`. */
  probe: boolean;
}

/**
 * Decides whether a request may go to the provider. Half-open admits at most `maxProbes`
 * requests at a time, so a recovering upstream is not flooded by every waiting client at once.
 */
export function admit(
  record: BreakerRecord,
  now: number,
  probesInFlight: number,
  maxProbes: number,
): AdmitResult {
  const from = record.state;
  let next = record;
  if (record.state === 'open') {
    const until = record.openUntil ?? 0;
    if (now < until)
      return { allowed: false, record, from, retryAfterMs: until - now, probe: false };
    next = { ...record, state: 'half_open', halfOpenSuccesses: 0, forced: false };
    probesInFlight = 0;
  }
  if (next.state === 'half_open') {
    if (probesInFlight >= maxProbes)
      return { allowed: false, record: next, from, retryAfterMs: 0, probe: false };
    return { allowed: true, record: next, from, retryAfterMs: 0, probe: true };
  }
  return { allowed: true, record: next, from, retryAfterMs: 0, probe: false };
}

export interface RecordResult {
  record: BreakerRecord;
  from: BreakerState;
  to: BreakerState;
}

/** Applies one attempt's outcome. A late result on an open breaker changes nothing. */
export function applyOutcome(
  record: BreakerRecord,
  outcome: BreakerOutcome,
  now: number,
  settings: BreakerSettings,
): RecordResult {
  const from = record.state;
  const same = { record, from, to: from };
  if (outcome === 'neutral') return same;
  const openNow = (failures: number): BreakerRecord => ({
    state: 'open',
    failures,
    halfOpenSuccesses: 0,
    openedAt: now,
    openUntil: now + settings.openMs,
    forced: false,
  });
  if (record.state === 'closed') {
    if (outcome === 'success')
      return record.failures === 0 ? same : { record: { ...record, failures: 0 }, from, to: from };
    const failures = record.failures + 1;
    if (failures >= settings.failureThreshold)
      return { record: openNow(failures), from, to: 'open' };
    return { record: { ...record, failures }, from, to: from };
  }
  if (record.state === 'half_open') {
    if (outcome === 'failure') return { record: openNow(record.failures + 1), from, to: 'open' };
    const successes = record.halfOpenSuccesses + 1;
    if (successes >= settings.halfOpenSuccesses) {
      const closed: BreakerRecord = {
        state: 'closed',
        failures: 0,
        halfOpenSuccesses: 0,
        openedAt: null,
        openUntil: null,
        forced: false,
      };
      return { record: closed, from, to: 'closed' };
    }
    return { record: { ...record, halfOpenSuccesses: successes }, from, to: from };
  }
  return same;
}

/**
 * The failures of a closed run (their times) that a success at `successAt` leaves standing: those
 * that came after it. A success recorded a moment late must not undo a later failure, or
 * "consecutive failures" would depend on when replicas flush. Same rule as SUCCESSES_SCRIPT.
 */
export function failuresAfter(runTimes: number[], successAt: number): number[] {
  return runTimes.filter((at) => at > successAt);
}

export interface WindowStats {
  successRate: number | null;
  p95LatencyMs: number | null;
  samples: number;
}

/** Success rate and p95 latency over the samples newer than `windowMs` (nearest-rank p95). */
export function windowStats(samples: BreakerSample[], now: number, windowMs: number): WindowStats {
  const recent = samples.filter((s) => now - s.at <= windowMs);
  if (recent.length === 0) return { successRate: null, p95LatencyMs: null, samples: 0 };
  const ok = recent.filter((s) => s.ok).length;
  const latencies = recent.map((s) => s.latencyMs).sort((a, b) => a - b);
  const rank = Math.max(0, Math.ceil(0.95 * latencies.length) - 1);
  return {
    successRate: Math.round((ok / recent.length) * 10000) / 10000,
    p95LatencyMs: Math.round(latencies[rank]),
    samples: recent.length,
  };
}
