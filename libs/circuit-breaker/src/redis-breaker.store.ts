import type Redis from 'ioredis';
import type { ChainableCommander } from 'ioredis';
import {
  ADMIT_SCRIPT,
  FORCE_OPEN_SCRIPT,
  RECORD_SCRIPT,
  RESET_SCRIPT,
  SUCCESSES_SCRIPT,
} from './breaker.scripts';
import {
  AdmitRequest,
  BreakerSnapshot,
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
} from './breaker.types';

type ScriptClient = Redis & {
  syBreakerAdmit(
    ...args: (string | number)[]
  ): Promise<[number, BreakerState, BreakerState, number]>;
  syBreakerRecord(...args: (string | number)[]): Promise<[BreakerState, BreakerState]>;
  syBreakerSuccesses(...args: (string | number)[]): Promise<[BreakerState, number]>;
  syBreakerReset(...args: (string | number)[]): Promise<[BreakerState, BreakerState]>;
  syBreakerForceOpen(...args: (string | number)[]): Promise<[BreakerState, BreakerState]>;
};

const defined = new WeakSet<Redis>();

/** defineCommand lets ioredis send EVALSHA and fall back to EVAL once per connection. */
function scripts(client: Redis): ScriptClient {
  if (!defined.has(client)) {
    client.defineCommand('syBreakerAdmit', { numberOfKeys: 2, lua: ADMIT_SCRIPT });
    client.defineCommand('syBreakerRecord', { numberOfKeys: 3, lua: RECORD_SCRIPT });
    client.defineCommand('syBreakerSuccesses', { numberOfKeys: 2, lua: SUCCESSES_SCRIPT });
    client.defineCommand('syBreakerReset', { numberOfKeys: 2, lua: RESET_SCRIPT });
    client.defineCommand('syBreakerForceOpen', { numberOfKeys: 2, lua: FORCE_OPEN_SCRIPT });
    defined.add(client);
  }
  return client as ScriptClient;
}

/** The braces make every key of one breaker hash to the same Redis Cluster slot. */
function keys(name: string): [string, string, string] {
  return [`cb:{${name}}`, `cb:{${name}}:probes`, `cb:{${name}}:samples`];
}

/** Script commands queued on a pipeline: ioredis defines them there too, as EVALSHA. */
type ScriptPipeline = ChainableCommander & {
  syBreakerRecord(...args: (string | number)[]): ScriptPipeline;
  syBreakerSuccesses(...args: (string | number)[]): ScriptPipeline;
};

function pipeline(client: Redis): ScriptPipeline {
  return scripts(client).pipeline() as ScriptPipeline;
}

/** Runs a pipeline (one round trip) and fails as a whole if any command failed. */
async function execAll(commands: ScriptPipeline): Promise<unknown[]> {
  const results = (await commands.exec()) ?? [];
  return results.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

function queueSuccesses(commands: ScriptPipeline, name: string, successes: SuccessSample[]): void {
  const [hash, , samples] = keys(name);
  const newest = Math.max(...successes.map((s) => s.at));
  const encoded = successes.map((s) => `${s.at}:${Math.round(s.latencyMs)}:1`);
  commands.syBreakerSuccesses(hash, samples, SAMPLE_LIMIT, newest, ...encoded);
}

function recordArgs(name: string, r: OutcomeRequest): (string | number)[] {
  return [
    ...keys(name),
    r.now,
    r.outcome,
    r.permitId,
    r.settings.failureThreshold,
    r.settings.openMs,
    r.settings.halfOpenSuccesses,
    Math.round(r.latencyMs),
    SAMPLE_LIMIT,
  ];
}

function toRecord(hash: Record<string, string>): BreakerRecord {
  const num = (v: string | undefined) => (v === undefined || v === '' ? null : Number(v));
  return {
    state: (hash.state as BreakerState | undefined) ?? 'closed',
    failures: num(hash.failures) ?? 0,
    halfOpenSuccesses: num(hash.halfOpenSuccesses) ?? 0,
    openedAt: num(hash.openedAt),
    openUntil: num(hash.openUntil),
    forced: hash.forced === '1',
  };
}

function toSample(raw: string): BreakerSample {
  const [at, latency, ok] = raw.split(':');
  return { at: Number(at), latencyMs: Number(latency), ok: ok === '1' };
}

/** Breaker state shared by every replica through Redis. Each method is one atomic script. */
export class RedisBreakerStore {
  async admit(client: Redis, name: string, r: AdmitRequest): Promise<BreakerAdmission> {
    const [hash, probes] = keys(name);
    const [allowed, state, from, retryAfterMs] = await scripts(client).syBreakerAdmit(
      hash,
      probes,
      r.now,
      r.maxProbes,
      r.permitId,
      r.permitTtlMs,
    );
    return { allowed: allowed === 1, state, from, retryAfterMs: Number(retryAfterMs) };
  }

  async record(client: Redis, name: string, r: OutcomeRequest): Promise<BreakerTransition> {
    return this.recordAfter(client, name, [], r);
  }

  /**
   * Records `earlier` buffered successes and then one outcome of the same breaker, in that order
   * and in one round trip (a pipeline runs in order on one connection). Always an explicit
   * pipeline, even with nothing earlier, so the order does not depend on how the client batches
   * lone commands (ioredis' auto-pipelining would send them a tick later; it is off, see
   * RedisService).
   */
  async recordAfter(
    client: Redis,
    name: string,
    earlier: SuccessSample[],
    r: OutcomeRequest,
  ): Promise<BreakerTransition> {
    const commands = pipeline(client);
    if (earlier.length > 0) queueSuccesses(commands, name, earlier);
    commands.syBreakerRecord(...recordArgs(name, r));
    const results = await execAll(commands);
    const [from, to] = results[results.length - 1] as [BreakerState, BreakerState];
    return { from, to };
  }

  /** Buffered successes of several breakers in one round trip; → each breaker's state, in order. */
  async recordSuccesses(
    client: Redis,
    batches: [name: string, successes: SuccessSample[]][],
  ): Promise<BreakerState[]> {
    if (batches.length === 0) return [];
    const commands = pipeline(client);
    for (const [name, successes] of batches) queueSuccesses(commands, name, successes);
    const results = await execAll(commands);
    return results.map((result) => (result as [BreakerState, number])[0]);
  }

  async read(client: Redis, names: string[]): Promise<Map<string, BreakerSnapshot>> {
    const pipeline = client.pipeline();
    for (const name of names) {
      const [hash, , samples] = keys(name);
      pipeline.hgetall(hash);
      pipeline.lrange(samples, 0, SAMPLE_LIMIT - 1);
    }
    const results = (await pipeline.exec()) ?? [];
    const out = new Map<string, BreakerSnapshot>();
    names.forEach((name, i) => {
      const [hashErr, hash] = results[i * 2] ?? [];
      const [listErr, list] = results[i * 2 + 1] ?? [];
      if (hashErr) throw hashErr;
      if (listErr) throw listErr;
      out.set(name, {
        record: toRecord((hash as Record<string, string>) ?? {}),
        samples: ((list as string[]) ?? []).map(toSample),
      });
    });
    return out;
  }

  async reset(client: Redis, name: string): Promise<BreakerTransition> {
    const [hash, probes] = keys(name);
    const [from, to] = await scripts(client).syBreakerReset(hash, probes);
    return { from, to };
  }

  async forceOpen(
    client: Redis,
    name: string,
    now: number,
    durationMs: number,
  ): Promise<BreakerTransition> {
    const [hash, probes] = keys(name);
    const [from, to] = await scripts(client).syBreakerForceOpen(hash, probes, now, durationMs);
    return { from, to };
  }
}
