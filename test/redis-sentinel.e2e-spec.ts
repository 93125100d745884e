import Redis from 'ioredis';
import { newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway, uniqueRedisPrefix } from './support/gateway';
import { MockUpstream, oneProviderFile } from './support/mock-upstream';
import {
  RedisSentinel,
  RedisServer,
  startRedisSentinel,
  startRedisServer,
} from './support/redis-server';
import { waitFor } from './support/wait-for';

const MASTER_NAME = 'sy-master';

/** Keys under `prefix` on the server at `port`: where the gateway's shared state really is. */
async function keysOn(port: number, prefix: string): Promise<string[]> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
  try {
    await client.connect();
    return await client.keys(`${prefix}*`);
  } finally {
    client.disconnect();
  }
}

async function roleOf(port: number): Promise<string | undefined> {
  const client = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    retryStrategy: () => null,
  });
  try {
    await client.connect();
    return /role:(\w+)/.exec(await client.info('replication'))?.[1];
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

/**
 * DESIGN §2: replicas share "one Redis (or Redis Cluster/Sentinel via ioredis)". With
 * REDIS_SENTINELS the gateway asks the Sentinels for the master, and follows a failover.
 */
describe('Redis through Sentinel (REDIS_SENTINELS)', () => {
  const upstream = new MockUpstream('primary');
  const prefix = uniqueRedisPrefix();
  let master: RedisServer;
  let replica: RedisServer;
  let sentinel: RedisSentinel;
  let gw: TestGateway;

  beforeAll(async () => {
    await upstream.start();
    master = await startRedisServer();
    replica = await startRedisServer({ args: ['--replicaof', '127.0.0.1', String(master.port)] });
    sentinel = await startRedisSentinel(MASTER_NAME, master.port);
    gw = await startGateway({
      // The host is not dialled: the Sentinels say where the master is.
      redis: `redis://${MASTER_NAME}:6379`,
      env: {
        PROVIDERS_FILE: oneProviderFile(upstream.url, ['gpt-sentinel']),
        REDIS_KEY_PREFIX: prefix,
        REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`,
        REDIS_SENTINEL_NAME: MASTER_NAME,
      },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await sentinel?.stop();
    await replica?.stop();
    await master?.stop();
    await upstream.stop();
  });

  const chat = async (consumer: TestConsumer) =>
    (
      await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'gpt-sentinel',
          messages: [{ role: 'user', content: 'hello' }],
        }),
      })
    ).status;

  /** Whether /health/detailed says Redis is in use (not the per-process fallback). */
  const redisInUse = async () => {
    const res = await fetch(`${gw.url}/health/detailed`);
    const body = (await res.json()) as {
      components: Array<{ name: string; status: string; details?: { fallback_active?: boolean } }>;
    };
    const redis = body.components.find((c) => c.name === 'redis');
    return redis?.status === 'up' && redis.details?.fallback_active === false;
  };

  it('keeps its shared state on the master the Sentinels name, and follows a failover', async () => {
    expect(await redisInUse()).toBe(true);
    const before = await newConsumer(gw, { rateLimitPerMinute: 2 });
    expect([await chat(before), await chat(before), await chat(before)]).toEqual([200, 200, 429]);
    expect((await keysOn(master.port, prefix)).length).toBeGreaterThan(0);

    await master.stop();
    await waitFor(async () => (await roleOf(replica.port)) === 'master', 30_000, 'a failover');
    await waitFor(redisInUse, 30_000, 'the gateway to reconnect');

    // The limit is kept on the new master again, not in the process's fallback memory.
    const after = await newConsumer(gw, { rateLimitPerMinute: 2 });
    const keysBefore = (await keysOn(replica.port, prefix)).length;
    expect([await chat(after), await chat(after), await chat(after)]).toEqual([200, 200, 429]);
    expect((await keysOn(replica.port, prefix)).length).toBeGreaterThan(keysBefore);
    expect(gw.logText()).toContain('FALLBACK ACTIVATED');
    expect(gw.logText()).toContain('FALLBACK DEACTIVATED');
  });
});
