import { counter } from '@app/observability';

/**
 * scope: key_minute | key_hour (per-key windows), login_ip | login_username (/auth/token),
 * redis_unavailable (refused under RATE_LIMIT_ON_REDIS_FAILURE=deny).
 */
export const rateLimitRejections = counter(
  'gateway_rate_limit_rejections_total',
  'Requests refused by a rate limit, by scope',
  ['scope'],
);
