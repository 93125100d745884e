import { gauge } from '@app/observability';

export const redisUp = gauge('gateway_redis_up', '1 when the gateway is connected to Redis');
export const redisFallbackActive = gauge(
  'gateway_redis_fallback_active',
  '1 while Redis-backed state is kept in process memory',
);
