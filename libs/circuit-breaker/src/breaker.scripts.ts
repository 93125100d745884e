/**
 * Lua for the Redis-shared breaker: each script reads and writes one breaker's keys in a single
 * atomic step, so two replicas counting failures at the same moment cannot lose an update or both
 * "win" a transition. The rules are those of breaker-state-machine.ts; keep them in step.
 *
 * KEYS[1] = hash (state, failures, halfOpenSuccesses, openedAt, openUntil, forced)
 * KEYS[2] = sorted set of half-open probe permits scored by expiry
 * KEYS[3] = list of recent samples "at:latencyMs:ok"
 */

/** ARGV: now, maxProbes, permitId, permitTtlMs → {allowed 0|1, state, from, retryAfterMs} */
export const ADMIT_SCRIPT = `
local now = tonumber(ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'state', 'openUntil')
local state = h[1] or 'closed'
local from = state
if state == 'open' then
  local untilMs = tonumber(h[2]) or 0
  if now < untilMs then return {0, 'open', from, untilMs - now} end
  state = 'half_open'
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'halfOpenSuccesses', 0, 'forced', 0)
  redis.call('DEL', KEYS[2])
end
if state == 'half_open' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return {0, 'half_open', from, 0} end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[3])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
end
return {1, state, from, 0}
`;

/**
 * ARGV: now, outcome (success|failure|neutral), permitId, failureThreshold, openMs,
 * halfOpenSuccesses, latencyMs, sampleLimit → {from, to}
 */
export const RECORD_SCRIPT = `
local now = tonumber(ARGV[1])
local outcome = ARGV[2]
redis.call('ZREM', KEYS[2], ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'halfOpenSuccesses')
local state = h[1] or 'closed'
if outcome == 'neutral' then return {state, state} end
local ok = '0'
if outcome == 'success' then ok = '1' end
redis.call('LPUSH', KEYS[3], now .. ':' .. ARGV[7] .. ':' .. ok)
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[8]) - 1)
local failures = tonumber(h[2]) or 0
local successes = tonumber(h[3]) or 0
local function open(n)
  redis.call('HSET', KEYS[1], 'state', 'open', 'failures', n, 'halfOpenSuccesses', 0,
    'openedAt', now, 'openUntil', now + tonumber(ARGV[5]), 'forced', 0)
  redis.call('DEL', KEYS[2])
end
if state == 'closed' then
  if outcome == 'success' then
    if failures ~= 0 then redis.call('HSET', KEYS[1], 'failures', 0) end
    return {'closed', 'closed'}
  end
  failures = failures + 1
  if failures >= tonumber(ARGV[4]) then
    open(failures)
    return {'closed', 'open'}
  end
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', failures)
  return {'closed', 'closed'}
end
if state == 'half_open' then
  if outcome == 'failure' then
    open(failures + 1)
    return {'half_open', 'open'}
  end
  successes = successes + 1
  if successes >= tonumber(ARGV[6]) then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'halfOpenSuccesses', 0, 'forced', 0)
    redis.call('HDEL', KEYS[1], 'openedAt', 'openUntil')
    redis.call('DEL', KEYS[2])
    return {'half_open', 'closed'}
  end
  redis.call('HSET', KEYS[1], 'halfOpenSuccesses', successes)
  return {'half_open', 'half_open'}
end
return {state, state}
`;

/** → {from, 'closed'} */
export const RESET_SCRIPT = `
local from = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'halfOpenSuccesses', 0, 'forced', 0)
return {from, 'closed'}
`;

/** ARGV: now, durationMs → {from, 'open'} */
export const FORCE_OPEN_SCRIPT = `
local now = tonumber(ARGV[1])
local from = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('HSET', KEYS[1], 'state', 'open', 'halfOpenSuccesses', 0, 'openedAt', now,
  'openUntil', now + tonumber(ARGV[2]), 'forced', 1)
redis.call('DEL', KEYS[2])
return {from, 'open'}
`;
