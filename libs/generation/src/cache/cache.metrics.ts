import { counter } from '@app/observability';

/** result: hit | miss | bypass (not deterministic, Cache-Control no-cache/no-store). */
export const cacheRequests = counter(
  'gateway_cache_requests_total',
  'Chat completion requests by response-cache outcome',
  ['result'],
);
