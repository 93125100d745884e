import { counter, gauge } from '@app/observability';

export const redisUp = gauge('gateway_redis_up', '1 when the gateway is connected to Redis');
export const redisFallbackActive = gauge(
  'gateway_redis_fallback_active',
  '1 while Redis-backed state is kept in process memory',
);
/**
 * Calls Redis answered with an error while it stayed reachable, so no fallback was announced;
 * each was answered from process memory instead. `reason`: `oom` (maxmemory reached under
 * `noeviction`).
 */
export const redisErrors = counter(
  'gateway_redis_errors_total',
  'Redis calls refused while Redis stayed reachable (answered from process memory), by reason',
  ['reason'],
);
