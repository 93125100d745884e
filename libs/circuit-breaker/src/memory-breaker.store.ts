import { admit, applyOutcome, failuresAfter } from './breaker-state-machine';
import {
  AdmitRequest,
  BreakerSnapshot,
  BreakerStore,
  OutcomeRequest,
  SAMPLE_LIMIT,
  SuccessSample,
} from './breaker-store';
import {
  BreakerAdmission,
  BreakerRecord,
  BreakerSample,
  BreakerState,
  BreakerTransition,
  CLOSED_RECORD,
} from './breaker.types';

/** Per-process breaker state: used with no REDIS_URL and while Redis is unreachable. */
export class MemoryBreakerStore implements BreakerStore {
  private readonly records = new Map<string, BreakerRecord>();
  private readonly probes = new Map<string, Map<string, number>>();
  private readonly samples = new Map<string, BreakerSample[]>();
  /** When the failures of each closed run happened (the Lua keeps them as failureTimes). */
  private readonly runs = new Map<string, number[]>();

  /** Forgets every breaker: the next outage starts from closed, not from the last one's state. */
  clear(): void {
    this.records.clear();
    this.probes.clear();
    this.samples.clear();
    this.runs.clear();
  }

  private get(name: string): BreakerRecord {
    return this.records.get(name) ?? CLOSED_RECORD;
  }

  private liveProbes(name: string, now: number): Map<string, number> {
    let slots = this.probes.get(name);
    if (!slots) {
      slots = new Map();
      this.probes.set(name, slots);
    }
    for (const [id, expiresAt] of slots) if (expiresAt <= now) slots.delete(id);
    return slots;
  }

  async admit(name: string, request: AdmitRequest): Promise<BreakerAdmission> {
    const record = this.get(name);
    if (record.state === 'open' && request.now >= (record.openUntil ?? 0)) this.probes.delete(name);
    const slots = this.liveProbes(name, request.now);
    const result = admit(record, request.now, slots.size, request.maxProbes);
    this.records.set(name, result.record);
    if (result.probe) slots.set(request.permitId, request.now + request.permitTtlMs);
    return {
      allowed: result.allowed,
      state: result.record.state,
      from: result.from,
      retryAfterMs: result.retryAfterMs,
    };
  }

  async record(name: string, request: OutcomeRequest): Promise<BreakerTransition> {
    this.probes.get(name)?.delete(request.permitId);
    const result = applyOutcome(this.get(name), request.outcome, request.now, request.settings);
    if (request.outcome !== 'neutral')
      this.addSample(name, {
        at: request.now,
        latencyMs: request.latencyMs,
        ok: request.outcome === 'success',
      });
    const failed = result.record.state === 'closed' && result.record.failures > 0;
    if (!failed) this.runs.delete(name);
    else if (request.outcome === 'failure')
      this.runs.set(name, [...(this.runs.get(name) ?? []), request.now]);
    this.records.set(name, result.record);
    if (result.to !== result.from && result.to !== 'half_open') this.probes.delete(name);
    return { from: result.from, to: result.to };
  }

  async recordSuccesses(name: string, successes: SuccessSample[]): Promise<BreakerState> {
    for (const s of successes) this.addSample(name, { ...s, ok: true });
    const record = this.get(name);
    if (record.state !== 'closed' || record.failures === 0 || successes.length === 0)
      return record.state;
    const newest = Math.max(...successes.map((s) => s.at));
    const run = failuresAfter(this.runs.get(name) ?? [], newest);
    this.runs.set(name, run);
    this.records.set(name, { ...record, failures: run.length });
    return record.state;
  }

  private addSample(name: string, sample: BreakerSample): void {
    const list = this.samples.get(name) ?? [];
    list.unshift(sample);
    if (list.length > SAMPLE_LIMIT) list.length = SAMPLE_LIMIT;
    this.samples.set(name, list);
  }

  async read(names: string[]): Promise<Map<string, BreakerSnapshot>> {
    const out = new Map<string, BreakerSnapshot>();
    for (const name of names)
      out.set(name, { record: this.get(name), samples: [...(this.samples.get(name) ?? [])] });
    return out;
  }

  async reset(name: string): Promise<BreakerTransition> {
    const from = this.get(name).state;
    this.records.set(name, CLOSED_RECORD);
    this.probes.delete(name);
    this.runs.delete(name);
    return { from, to: 'closed' };
  }

  async forceOpen(name: string, now: number, durationMs: number): Promise<BreakerTransition> {
    const current = this.get(name);
    this.records.set(name, {
      state: 'open',
      failures: current.failures,
      halfOpenSuccesses: 0,
      openedAt: now,
      openUntil: now + durationMs,
      forced: true,
    });
    this.probes.delete(name);
    return { from: current.state, to: 'open' };
  }
}
