import type Redis from 'ioredis';
import { ADMIT_SCRIPT, FORCE_OPEN_SCRIPT, RECORD_SCRIPT, RESET_SCRIPT } from './breaker.scripts';
import { AdmitRequest, BreakerSnapshot, OutcomeRequest, SAMPLE_LIMIT } from './breaker-store';
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
  syBreakerReset(...args: (string | number)[]): Promise<[BreakerState, BreakerState]>;
  syBreakerForceOpen(...args: (string | number)[]): Promise<[BreakerState, BreakerState]>;
};

const defined = new WeakSet<Redis>();

/** defineCommand lets ioredis send EVALSHA and fall back to EVAL once per connection. */
function scripts(client: Redis): ScriptClient {
  if (!defined.has(client)) {
    client.defineCommand('syBreakerAdmit', { numberOfKeys: 2, lua: ADMIT_SCRIPT });
    client.defineCommand('syBreakerRecord', { numberOfKeys: 3, lua: RECORD_SCRIPT });
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
    const [from, to] = await scripts(client).syBreakerRecord(
      ...keys(name),
      r.now,
      r.outcome,
      r.permitId,
      r.settings.failureThreshold,
      r.settings.openMs,
      r.settings.halfOpenSuccesses,
      Math.round(r.latencyMs),
      SAMPLE_LIMIT,
    );
    return { from, to };
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
