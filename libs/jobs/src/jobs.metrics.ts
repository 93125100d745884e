import { counter, gauge } from '@app/observability';
import { JOB_TYPES } from './jobs.types';

/**
 * Cluster-wide depth of generation_jobs (every replica reports the same numbers: aggregate with
 * max(), not sum()). status: pending | generating.
 */
export const queueDepth = gauge(
  'gateway_generation_queue_depth',
  'Generation jobs waiting (pending) or running (generating), cluster-wide',
  ['status'],
);

const JOB_OUTCOMES = ['submitted', 'succeeded', 'failed', 'cancelled', 'stuck', 'retried'];

/** outcome: submitted | succeeded | failed | cancelled | stuck | retried. type: chat | image. */
export const jobsTotal = counter(
  'gateway_generation_jobs_total',
  'Generation jobs by type and outcome',
  ['type', 'outcome'],
);
// Every series exists at 0 from the start: a series born at 1 gives increase() and rate() no
// step to see, so the first job of each kind after a start would be missing from the dashboards.
for (const type of JOB_TYPES)
  for (const outcome of JOB_OUTCOMES) jobsTotal.inc({ type, outcome }, 0);

export const wsConnections = gauge(
  'gateway_websocket_connections',
  'Open authenticated WebSocket connections on this replica',
);
