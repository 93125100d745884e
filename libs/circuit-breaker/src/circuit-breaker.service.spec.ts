import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import pino from 'pino';
import { loadConfig } from '@app/config';
import { HealthRegistry } from '@app/health';
import { RedisService } from '@app/redis';
import { testEnv } from '../../../test/support/test-env';
import { CircuitBreakerService, CLOSED_VIEW_FRESH_MS, FLUSH_AT } from './circuit-breaker.service';
import { RedisBreakerStore } from './redis-breaker.store';

const redisUrl = testEnv.redisUrl;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const TTL = 5000;

interface Replica {
  breakers: CircuitBreakerService;
  redis: RedisService;
  /** Calls that went to Redis (or would have): one round trip each. */
  redisCalls: () => number;
}

async function startReplica(prefix: string, url: string | undefined): Promise<Replica> {
  const config = loadConfig({
    NODE_ENV: 'test',
    ...(url ? { REDIS_URL: url } : {}),
    REDIS_KEY_PREFIX: prefix,
    CB_FAILURE_THRESHOLD: '3',
    CB_OPEN_MS: '60000',
    CB_HALF_OPEN_SUCCESSES: '2',
  });
  config.backgroundTasks = false;
  const logger = pino({ level: 'silent' });
  const redis = new RedisService(config, logger);
  await redis.connect();
  const breakers = new CircuitBreakerService(config, logger, redis, new HealthRegistry());
  breakers.onModuleInit();
  breakers.register(['p']);
  const calls = jest.spyOn(redis, 'withFallback');
  await breakers.list(); // lets register's gauge refresh go out before counting
  calls.mockClear();
  return { breakers, redis, redisCalls: () => calls.mock.calls.length };
}

async function stop(replica: Replica): Promise<void> {
  await replica.breakers.beforeApplicationShutdown();
  replica.breakers.onApplicationShutdown();
  await replica.redis.onApplicationShutdown();
}

/** One attempt: acquire, then release with `outcome` (only if admitted). */
async function attempt(replica: Replica, outcome: 'success' | 'failure' | 'neutral') {
  const permit = await replica.breakers.acquire('p', TTL);
  if (permit.allowed) await permit.release(outcome, 12);
  return permit;
}

async function waitUntil(predicate: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!(await predicate())) {
    if (Date.now() - started > timeoutMs) throw new Error('condition not met in time');
    await sleep(5);
  }
  return Date.now() - started;
}

(redisUrl ? describe : describe.skip)('CircuitBreakerService closed-state fast path', () => {
  let a: Replica;
  let b: Replica;
  let prefix: string;

  beforeEach(async () => {
    prefix = `t${randomBytes(4).toString('hex')}:`;
    a = await startReplica(prefix, redisUrl);
    b = await startReplica(prefix, redisUrl);
  });
  afterEach(async () => {
    await stop(a);
    await stop(b);
  });

  it('admits closed-state attempts locally and sends their successes in one batched call', async () => {
    await attempt(a, 'success'); // first sight of the breaker: one ADMIT
    expect(a.redisCalls()).toBe(1);
    for (let i = 0; i < 20; i++) expect((await attempt(a, 'success')).state).toBe('closed');
    expect(a.redisCalls()).toBe(1);
    // Another replica sees them within FLUSH_MS, as samples.
    await waitUntil(async () => (await b.breakers.get('p')).samples === 21, 1000);
    expect(a.redisCalls()).toBe(2);
    expect(await b.breakers.get('p')).toMatchObject({ state: 'closed', successRate: 1 });
    // The flush reply renewed the closed view: still no ADMIT.
    await attempt(a, 'neutral');
    expect(a.redisCalls()).toBe(2);
  });

  it(`flushes at once when ${FLUSH_AT} successes are waiting`, async () => {
    await attempt(a, 'success');
    for (let i = 1; i < FLUSH_AT; i++) await attempt(a, 'success');
    expect(a.redisCalls()).toBe(2);
    expect((await b.breakers.get('p')).samples).toBe(FLUSH_AT);
  });

  it('records a failure at once, after the successes buffered before it, in one round trip', async () => {
    await attempt(a, 'failure');
    await attempt(a, 'failure');
    expect((await b.breakers.get('p')).failures).toBe(2);
    await attempt(a, 'success'); // admitted through Redis (the last failure dropped the view), buffered
    const before = a.redisCalls();
    await attempt(a, 'failure');
    expect(a.redisCalls() - before).toBe(1); // the buffered success and the failure together
    expect((await b.breakers.get('p')).failures).toBe(1);
    await attempt(a, 'failure');
    expect((await b.breakers.get('p')).state).toBe('closed');
    await attempt(a, 'failure');
    expect((await b.breakers.get('p')).state).toBe('open');
  });

  it("does not let another replica's late success undo failures counted after it", async () => {
    await attempt(b, 'success'); // buffered on b
    await sleep(2);
    await attempt(a, 'failure');
    await attempt(a, 'failure');
    await b.breakers.beforeApplicationShutdown(); // b's success reaches Redis after the failures
    expect(await a.breakers.get('p')).toMatchObject({ state: 'closed', failures: 2, samples: 3 });
    await attempt(a, 'failure');
    expect((await a.breakers.get('p')).state).toBe('open');
  });

  it('stops admitting on a replica within milliseconds of another replica opening the breaker', async () => {
    await attempt(b, 'success');
    for (let i = 0; i < 3; i++) await attempt(a, 'failure');
    const took = await waitUntil(async () => !(await b.breakers.acquire('p', TTL)).allowed, 1000);
    expect(took).toBeLessThan(CLOSED_VIEW_FRESH_MS / 2);
    expect((await b.breakers.acquire('p', TTL)).state).toBe('open');
  });

  it('sees force-open and reset made by another replica (admin API or CLI) at once', async () => {
    await attempt(b, 'success');
    await a.breakers.forceOpen('p', 60_000, 'test');
    const took = await waitUntil(async () => !(await b.breakers.acquire('p', TTL)).allowed, 1000);
    expect(took).toBeLessThan(CLOSED_VIEW_FRESH_MS / 2);
    await a.breakers.reset('p', 'test');
    expect((await b.breakers.acquire('p', TTL)).allowed).toBe(true);
  });

  it('a change nobody announced is seen within CLOSED_VIEW_FRESH_MS', async () => {
    await attempt(b, 'success');
    await sleep(300); // the flush renews b's view; let it happen before the silent change
    const raw = new Redis(redisUrl!, { keyPrefix: prefix });
    try {
      await new RedisBreakerStore().forceOpen(raw, 'p', Date.now(), 60_000); // no pub/sub
      const took = await waitUntil(
        async () => !(await b.breakers.acquire('p', TTL)).allowed,
        CLOSED_VIEW_FRESH_MS + 200,
      );
      expect(took).toBeLessThanOrEqual(CLOSED_VIEW_FRESH_MS + 20);
    } finally {
      raw.disconnect();
    }
  });

  it('flushes at shutdown, then records each success directly', async () => {
    await attempt(a, 'success');
    await attempt(a, 'success');
    await a.breakers.beforeApplicationShutdown();
    expect((await b.breakers.get('p')).samples).toBe(2);
    const before = a.redisCalls();
    await attempt(a, 'success');
    expect(a.redisCalls() - before).toBe(1); // the RECORD itself; admission still local
    expect((await b.breakers.get('p')).samples).toBe(3);
  });

  it('probes in half-open go to Redis one by one and close the breaker everywhere', async () => {
    await a.breakers.forceOpen('p', 1, 'test');
    await sleep(5);
    await attempt(a, 'success');
    expect((await b.breakers.get('p')).state).toBe('half_open');
    await attempt(b, 'success');
    expect(await a.breakers.get('p')).toMatchObject({ state: 'closed', samples: 2 });
  });
});

describe('CircuitBreakerService without Redis', () => {
  it('records every outcome in process memory at once', async () => {
    const solo = await startReplica('m:', undefined);
    try {
      await attempt(solo, 'success');
      expect((await solo.breakers.get('p')).samples).toBe(1);
      for (let i = 0; i < 3; i++) await attempt(solo, 'failure');
      const refused = await solo.breakers.acquire('p', TTL);
      expect(refused).toMatchObject({ allowed: false, state: 'open' });
    } finally {
      await stop(solo);
    }
  });
});
