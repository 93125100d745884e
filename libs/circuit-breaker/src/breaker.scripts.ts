/**
 * Lua for the Redis-shared breaker: each script reads and writes one breaker's keys in a single
 * atomic step, so two replicas counting failures at the same moment cannot lose an update or both
 * "win" a transition. The rules are those of breaker-state-machine.ts; keep them in step.
 *
 * KEYS[1] = hash (state, failures, halfOpenSuccesses, openedAt, openUntil, forced, failureTimes)
 * KEYS[2] = sorted set of half-open probe permits scored by expiry
 * KEYS[3] = list of recent samples "at:latencyMs:ok"
 *
 * failureTimes lists when the failures of the current closed run happened ("t1,t2,…"), so that a
 * success buffered by a replica (SUCCESSES_SCRIPT) only undoes the failures older than itself.
 */

/**
 * The times of the last n failures of the current run. Entries beyond n are left over from a
 * reset by a script that does not track times (an older replica during a rolling deploy).
 */
const RUN_TIMES = `
local function runTimes(raw, n)
  local all = {}
  if raw then for t in string.gmatch(raw, '[^,]+') do all[#all + 1] = t end end
  local out = {}
  for i = math.max(1, #all - n + 1), #all do out[#out + 1] = all[i] end
  return out
end
`;

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
export const RECORD_SCRIPT = `${RUN_TIMES}
local now = tonumber(ARGV[1])
local outcome = ARGV[2]
redis.call('ZREM', KEYS[2], ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'halfOpenSuccesses', 'failureTimes')
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
  redis.call('HDEL', KEYS[1], 'failureTimes')
  redis.call('DEL', KEYS[2])
end
if state == 'closed' then
  if outcome == 'success' then
    if failures ~= 0 then
      redis.call('HSET', KEYS[1], 'failures', 0)
      redis.call('HDEL', KEYS[1], 'failureTimes')
    end
    return {'closed', 'closed'}
  end
  failures = failures + 1
  if failures >= tonumber(ARGV[4]) then
    open(failures)
    return {'closed', 'open'}
  end
  local times = runTimes(h[4], failures - 1)
  times[#times + 1] = ARGV[1]
  redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', failures,
    'failureTimes', table.concat(times, ','))
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
    redis.call('HDEL', KEYS[1], 'openedAt', 'openUntil', 'failureTimes')
    redis.call('DEL', KEYS[2])
    return {'half_open', 'closed'}
  end
  redis.call('HSET', KEYS[1], 'halfOpenSuccesses', successes)
  return {'half_open', 'half_open'}
end
return {state, state}
`;

/**
 * Successes of attempts admitted while closed, buffered by one replica and sent together
 * (CircuitBreakerService). Each is a sample; in closed state they undo the failures of the run
 * that are older than the newest of them, as if each had been recorded when it happened. They
 * never count as half-open probes: they were not admitted as probes.
 *
 * KEYS: hash, samples. ARGV: sampleLimit, newestAt, sample… ("at:latencyMs:1", oldest first)
 * → {state, failures}
 */
export const SUCCESSES_SCRIPT = `${RUN_TIMES}
redis.call('LPUSH', KEYS[2], unpack(ARGV, 3))
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[1]) - 1)
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'failureTimes')
local state = h[1] or 'closed'
local failures = tonumber(h[2]) or 0
if state ~= 'closed' or failures == 0 then return {state, failures} end
local newest = tonumber(ARGV[2])
local kept = {}
for _, t in ipairs(runTimes(h[3], failures)) do
  if tonumber(t) > newest then kept[#kept + 1] = t end
end
if #kept == 0 then
  redis.call('HSET', KEYS[1], 'failures', 0)
  redis.call('HDEL', KEYS[1], 'failureTimes')
else
  redis.call('HSET', KEYS[1], 'failures', #kept, 'failureTimes', table.concat(kept, ','))
end
return {state, #kept}
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
