import { gauge, histogram } from '@app/observability';

export const dbQueryDuration = histogram(
  'gateway_db_query_duration_seconds',
  'Duration of database queries issued by the gateway',
  ['operation'],
  [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
);

export const dbPoolConnections = gauge(
  'gateway_db_pool_connections',
  'Database pool connections by state (total, idle, waiting, max)',
  ['state'],
);

export const dbUp = gauge('gateway_db_up', '1 while the 2 s database probe succeeds');
