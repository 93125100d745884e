import { counter, gauge } from '@app/observability';

/**
 * Cluster-wide depth of generation_jobs (every replica reports the same numbers: aggregate with
 * max(), not sum()). status: pending | generating.
 */
export const queueDepth = gauge(
  'gateway_generation_queue_depth',
  'Generation jobs waiting (pending) or running (generating), cluster-wide',
  ['status'],
);

/** outcome: submitted | succeeded | failed | cancelled | stuck | retried. type: chat | image. */
export const jobsTotal = counter(
  'gateway_generation_jobs_total',
  'Generation jobs by type and outcome',
  ['type', 'outcome'],
);

export const wsConnections = gauge(
  'gateway_websocket_connections',
  'Open authenticated WebSocket connections on this replica',
);
