import { counter, histogram } from '@app/observability';

export const upstreamRequests = counter(
  'gateway_upstream_requests_total',
  'Attempts sent to upstream providers, by outcome',
  ['provider', 'model', 'outcome'],
);

export const upstreamDuration = histogram(
  'gateway_upstream_duration_seconds',
  'Upstream attempt duration (to the full answer, or to the first chunk of a stream)',
  ['provider'],
  [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120],
);
