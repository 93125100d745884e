import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { consumeOnRedis, windowKeys } from '../libs/rate-limit/src/rate-limit.script';
import { HOUR_MS, LocalWindows, MINUTE_MS } from '../libs/rate-limit/src/rate-limit.window';
import { uniqueRedisPrefix } from './support/gateway';
import { testEnv } from './support/test-env';

/**
 * The Lua script and the per-process fallback must be one algorithm: the same request sequence
 * gives the same decisions and counts on both.
 */
describe('rate-limit script on a real Redis', () => {
  let client: Redis;
  beforeAll(() => {
    if (!testEnv.redisUrl) throw new Error('Redis is required for this suite');
    client = new Redis(testEnv.redisUrl, { keyPrefix: uniqueRedisPrefix() });
  });
  afterAll(async () => {
    client.disconnect();
  });

  it('decides exactly like LocalWindows over a mixed sequence of limits', async () => {
    const id = randomUUID();
    const local = new LocalWindows();
    const limitsSequence = [
      ...Array.from({ length: 7 }, () => ({ perMinute: 5, perHour: 8 })),
      ...Array.from({ length: 4 }, () => ({ perMinute: 10, perHour: 8 })),
      ...Array.from({ length: 3 }, () => ({ perMinute: 10, perHour: 20 })),
    ];
    for (const limits of limitsSequence) {
      const onRedis = await consumeOnRedis(client, id, limits);
      const inMemory = local.consume(id, limits);
      expect({
        allowed: onRedis.allowed,
        scope: onRedis.scope,
        minute: onRedis.minute.count,
        hour: onRedis.hour.count,
      }).toEqual({
        allowed: inMemory.allowed,
        scope: inMemory.scope,
        minute: inMemory.minute.count,
        hour: inMemory.hour.count,
      });
      expect(onRedis.minute.resetInMs).toBeGreaterThan(MINUTE_MS - 5_000);
      expect(onRedis.minute.resetInMs).toBeLessThanOrEqual(MINUTE_MS);
      expect(onRedis.hour.resetInMs).toBeLessThanOrEqual(HOUR_MS);
    }
  });

  it('keeps both windows in one hash slot and gives a counter without TTL one', async () => {
    const id = randomUUID();
    const [minuteKey, hourKey] = windowKeys(id);
    expect(minuteKey).toContain(`{${id}}`);
    expect(hourKey).toContain(`{${id}}`);
    await client.set(minuteKey, '2');
    const decision = await consumeOnRedis(client, id, { perMinute: 5, perHour: 5 });
    expect(decision.minute.count).toBe(3);
    expect(await client.pttl(minuteKey)).toBeGreaterThan(0);
  });

  it('counts exactly the limit under concurrent requests', async () => {
    const id = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 40 }, () => consumeOnRedis(client, id, { perMinute: 25, perHour: 100 })),
    );
    expect(results.filter((d) => d.allowed)).toHaveLength(25);
    const [minuteKey, hourKey] = windowKeys(id);
    expect(await client.get(minuteKey)).toBe('25');
    expect(await client.get(hourKey)).toBe('25');
  });
});
