import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { testEnv } from '../../../test/support/test-env';
import { AdmitRequest, BreakerStore, OutcomeRequest } from './breaker-store';
import { BreakerOutcome, BreakerSettings } from './breaker.types';
import { MemoryBreakerStore } from './memory-breaker.store';
import { RedisBreakerStore } from './redis-breaker.store';

const settings: BreakerSettings = { failureThreshold: 3, openMs: 1000, halfOpenSuccesses: 2 };
const T0 = 1_700_000_000_000;

/** Runs the Redis store through the same interface as the memory store. */
function boundRedisStore(client: Redis): BreakerStore {
  const store = new RedisBreakerStore();
  return {
    admit: (name, r) => store.admit(client, name, r),
    record: (name, r) => store.record(client, name, r),
    recordSuccesses: async (name, successes) =>
      (await store.recordSuccesses(client, [[name, successes]]))[0],
    read: (names) => store.read(client, names),
    reset: (name) => store.reset(client, name),
    forceOpen: (name, now, ms) => store.forceOpen(client, name, now, ms),
  };
}

const redisUrl = testEnv.redisUrl;
let client: Redis | undefined;
const stores: [string, () => BreakerStore][] = [['memory', () => new MemoryBreakerStore()]];
// global-setup provides Redis (and refuses to run without it under CI=true).
if (redisUrl) stores.push(['redis', () => boundRedisStore(client!)]);

beforeAll(() => {
  if (redisUrl) client = new Redis(redisUrl, { keyPrefix: `t${randomBytes(4).toString('hex')}:` });
});
afterAll(() => client?.disconnect());

describe.each(stores)('breaker state machine on the %s store', (_kind, makeStore) => {
  let store: BreakerStore;
  let name: string;
  let permit = 0;
  beforeEach(() => {
    store = makeStore();
    name = `p${randomBytes(3).toString('hex')}`;
  });

  const admitAt = (now: number, maxProbes = settings.halfOpenSuccesses) => {
    const request: AdmitRequest = {
      now,
      permitId: `permit-${++permit}`,
      maxProbes,
      permitTtlMs: 5000,
    };
    return store.admit(name, request).then((a) => ({ ...a, permitId: request.permitId }));
  };
  const recordAt = (now: number, outcome: BreakerOutcome, permitId = `late-${++permit}`) => {
    const request: OutcomeRequest = { now, permitId, outcome, latencyMs: 10, settings };
    return store.record(name, request);
  };
  const state = async () => (await store.read([name])).get(name)!.record;
  const successesAt = (...ats: number[]) =>
    store.recordSuccesses(
      name,
      ats.map((at) => ({ at, latencyMs: 7 })),
    );

  it('starts closed with nothing counted', async () => {
    expect(await state()).toEqual({
      state: 'closed',
      failures: 0,
      halfOpenSuccesses: 0,
      openedAt: null,
      openUntil: null,
      forced: false,
    });
    expect(await admitAt(T0)).toMatchObject({ allowed: true, state: 'closed', from: 'closed' });
  });

  it('opens after exactly CB_FAILURE_THRESHOLD consecutive failures', async () => {
    expect(await recordAt(T0, 'failure')).toEqual({ from: 'closed', to: 'closed' });
    expect(await recordAt(T0 + 1, 'failure')).toEqual({ from: 'closed', to: 'closed' });
    expect((await state()).failures).toBe(2);
    expect(await recordAt(T0 + 2, 'failure')).toEqual({ from: 'closed', to: 'open' });
    expect(await state()).toMatchObject({
      state: 'open',
      failures: 3,
      openedAt: T0 + 2,
      openUntil: T0 + 2 + settings.openMs,
    });
  });

  it('a success resets the consecutive count; neutral outcomes count neither way', async () => {
    await recordAt(T0, 'failure');
    await recordAt(T0, 'failure');
    await recordAt(T0, 'neutral');
    expect((await state()).failures).toBe(2);
    await recordAt(T0, 'success');
    expect((await state()).failures).toBe(0);
    await recordAt(T0, 'failure');
    await recordAt(T0, 'failure');
    expect((await state()).state).toBe('closed');
  });

  it('refuses while open, then lets a probe through once CB_OPEN_MS has elapsed', async () => {
    for (let i = 0; i < 3; i++) await recordAt(T0, 'failure');
    const refused = await admitAt(T0 + 999);
    expect(refused).toMatchObject({ allowed: false, state: 'open', retryAfterMs: 1 });
    const probe = await admitAt(T0 + 1000);
    expect(probe).toMatchObject({ allowed: true, state: 'half_open', from: 'open' });
    expect((await state()).state).toBe('half_open');
  });

  it('closes after CB_HALF_OPEN_SUCCESSES successes in half-open', async () => {
    for (let i = 0; i < 3; i++) await recordAt(T0, 'failure');
    const a = await admitAt(T0 + 1000);
    expect(await recordAt(T0 + 1001, 'success', a.permitId)).toEqual({
      from: 'half_open',
      to: 'half_open',
    });
    const b = await admitAt(T0 + 1002);
    expect(await recordAt(T0 + 1003, 'success', b.permitId)).toEqual({
      from: 'half_open',
      to: 'closed',
    });
    expect(await state()).toMatchObject({ state: 'closed', failures: 0, openedAt: null });
  });

  it('reopens on any failure in half-open, for a fresh open period', async () => {
    for (let i = 0; i < 3; i++) await recordAt(T0, 'failure');
    const a = await admitAt(T0 + 1000);
    await recordAt(T0 + 1001, 'success', a.permitId);
    const b = await admitAt(T0 + 1002);
    expect(await recordAt(T0 + 1500, 'failure', b.permitId)).toEqual({
      from: 'half_open',
      to: 'open',
    });
    expect(await state()).toMatchObject({ state: 'open', openUntil: T0 + 2500 });
    expect(await admitAt(T0 + 2499)).toMatchObject({ allowed: false });
    expect(await admitAt(T0 + 2500)).toMatchObject({ allowed: true, state: 'half_open' });
  });

  it('admits at most CB_HALF_OPEN_SUCCESSES probes at a time in half-open', async () => {
    for (let i = 0; i < 3; i++) await recordAt(T0, 'failure');
    const a = await admitAt(T0 + 1000);
    const b = await admitAt(T0 + 1000);
    expect([a.allowed, b.allowed]).toEqual([true, true]);
    expect(await admitAt(T0 + 1000)).toMatchObject({ allowed: false, state: 'half_open' });
    await recordAt(T0 + 1001, 'neutral', a.permitId);
    expect(await admitAt(T0 + 1001)).toMatchObject({ allowed: true });
  });

  it('frees a probe slot whose permit expired (a replica died mid-request)', async () => {
    for (let i = 0; i < 3; i++) await recordAt(T0, 'failure');
    await admitAt(T0 + 1000, 1);
    expect(await admitAt(T0 + 1000, 1)).toMatchObject({ allowed: false });
    expect(await admitAt(T0 + 1000 + 5001, 1)).toMatchObject({ allowed: true });
  });

  it('ignores late results while open', async () => {
    for (let i = 0; i < 3; i++) await recordAt(T0, 'failure');
    expect(await recordAt(T0 + 10, 'success')).toEqual({ from: 'open', to: 'open' });
    expect(await recordAt(T0 + 10, 'failure')).toEqual({ from: 'open', to: 'open' });
    expect(await state()).toMatchObject({ state: 'open', openUntil: T0 + 1000 });
  });

  it('reset closes and clears counters; force-open holds for the given duration', async () => {
    for (let i = 0; i < 3; i++) await recordAt(T0, 'failure');
    expect(await store.reset(name)).toEqual({ from: 'open', to: 'closed' });
    expect(await state()).toMatchObject({ state: 'closed', failures: 0 });
    expect(await store.forceOpen(name, T0, 60_000)).toEqual({ from: 'closed', to: 'open' });
    expect(await state()).toMatchObject({ state: 'open', forced: true, openUntil: T0 + 60_000 });
    expect(await admitAt(T0 + 59_999)).toMatchObject({ allowed: false });
    expect(await admitAt(T0 + 60_000)).toMatchObject({ allowed: true, state: 'half_open' });
    expect((await state()).forced).toBe(false);
  });

  it('keeps recent samples for success rate and latency', async () => {
    await recordAt(T0, 'success');
    await recordAt(T0 + 1, 'failure');
    await recordAt(T0 + 2, 'neutral');
    const { samples } = (await store.read([name])).get(name)!;
    expect(samples).toEqual([
      { at: T0 + 1, latencyMs: 10, ok: false },
      { at: T0, latencyMs: 10, ok: true },
    ]);
  });

  describe('buffered successes (recordSuccesses)', () => {
    it('undo only the failures older than the newest of them', async () => {
      await recordAt(T0 + 10, 'failure');
      await recordAt(T0 + 20, 'failure');
      // Flushed after both failures, but one success happened between them.
      expect(await successesAt(T0 + 5, T0 + 15)).toBe('closed');
      expect((await state()).failures).toBe(1);
      await successesAt(T0 + 25);
      expect((await state()).failures).toBe(0);
    });

    it('leave a later run of failures to open the breaker at the threshold', async () => {
      await recordAt(T0 + 10, 'failure');
      await recordAt(T0 + 20, 'failure');
      await successesAt(T0 + 1);
      expect((await state()).failures).toBe(2);
      expect(await recordAt(T0 + 30, 'failure')).toEqual({ from: 'closed', to: 'open' });
    });

    it('count the run from the last reset, not from failures before it', async () => {
      await recordAt(T0 + 10, 'failure');
      await recordAt(T0 + 20, 'success');
      await recordAt(T0 + 30, 'failure');
      await successesAt(T0 + 25);
      expect((await state()).failures).toBe(1);
      await recordAt(T0 + 40, 'failure');
      expect(await recordAt(T0 + 50, 'failure')).toEqual({ from: 'closed', to: 'open' });
    });

    it('are samples but never half-open probes; nothing changes while open', async () => {
      for (let i = 0; i < 3; i++) await recordAt(T0, 'failure');
      expect(await successesAt(T0 + 1)).toBe('open');
      expect(await state()).toMatchObject({ state: 'open', failures: 3 });
      await admitAt(T0 + 1000);
      expect(await successesAt(T0 + 1001, T0 + 1002, T0 + 1003)).toBe('half_open');
      expect(await state()).toMatchObject({ state: 'half_open', halfOpenSuccesses: 0 });
    });

    it('keep their samples newest first, after older ones', async () => {
      await recordAt(T0, 'failure');
      await successesAt(T0 + 1, T0 + 2);
      const { samples } = (await store.read([name])).get(name)!;
      expect(samples).toEqual([
        { at: T0 + 2, latencyMs: 7, ok: true },
        { at: T0 + 1, latencyMs: 7, ok: true },
        { at: T0, latencyMs: 10, ok: false },
      ]);
    });
  });
});
