import type Redis from 'ioredis';
import { HOUR_MS, Limits, MINUTE_MS, RateLimitDecision, toDecision } from './rate-limit.window';

/**
 * Our own Lua rather than @nestjs/throttler's storage: throttler calls its storage once per named
 * throttler, so a minute and an hour limit would be two Redis round trips, and each call counts
 * the hit before the other window is consulted (a request refused by the hour window would still
 * eat a minute slot). This script checks both windows and counts in both only when both have
 * room: one atomic step per request, the same semantics as LocalWindows.
 *
 * KEYS[1] minute counter, KEYS[2] hour counter (same hash tag, so it runs on Redis Cluster too).
 * ARGV: minute limit, hour limit, minute length ms, hour length ms.
 * Returns {allowed, minuteCount, hourCount, minuteTtlMs, hourTtlMs}.
 */
export const CONSUME_SCRIPT = `
local function window(key, length)
  local count = tonumber(redis.call('GET', key) or '0')
  local ttl = redis.call('PTTL', key)
  if count > 0 and ttl < 0 then
    redis.call('PEXPIRE', key, length)
    ttl = tonumber(length)
  end
  if count == 0 then ttl = 0 end
  return count, ttl
end
local function bump(key, count, ttl, length)
  if count == 0 then
    redis.call('SET', key, 1, 'PX', length)
    return 1, tonumber(length)
  end
  return redis.call('INCR', key), ttl
end
local m, mttl = window(KEYS[1], ARGV[3])
local h, httl = window(KEYS[2], ARGV[4])
if m >= tonumber(ARGV[1]) or h >= tonumber(ARGV[2]) then
  return {0, m, h, mttl, httl}
end
m, mttl = bump(KEYS[1], m, mttl, ARGV[3])
h, httl = bump(KEYS[2], h, httl, ARGV[4])
return {1, m, h, mttl, httl}
`;

type ConsumeReply = [number, number, number, number, number];

interface WithConsume {
  rateLimitConsume(
    minuteKey: string,
    hourKey: string,
    perMinute: number,
    perHour: number,
    minuteMs: number,
    hourMs: number,
  ): Promise<ConsumeReply>;
}

/** Redis key names of a key's two windows; the braces keep both in one Cluster slot. */
export function windowKeys(apiKeyId: string): [string, string] {
  return [`rl:{${apiKeyId}}:m`, `rl:{${apiKeyId}}:h`];
}

/** Runs the script with EVALSHA (ioredis loads it on first use and after a Redis restart). */
export async function consumeOnRedis(
  client: Redis,
  apiKeyId: string,
  limits: Limits,
): Promise<RateLimitDecision> {
  const withConsume = client as unknown as Partial<WithConsume>;
  if (typeof withConsume.rateLimitConsume !== 'function') {
    client.defineCommand('rateLimitConsume', { numberOfKeys: 2, lua: CONSUME_SCRIPT });
  }
  const [minuteKey, hourKey] = windowKeys(apiKeyId);
  const [allowed, m, h, mttl, httl] = await (client as unknown as WithConsume).rateLimitConsume(
    minuteKey,
    hourKey,
    limits.perMinute,
    limits.perHour,
    MINUTE_MS,
    HOUR_MS,
  );
  return toDecision(
    allowed === 1,
    limits,
    { count: m, resetInMs: mttl },
    { count: h, resetInMs: httl },
    'redis',
  );
}
