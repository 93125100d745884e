import { ApiError } from '@app/observability';

const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '08000',
  '08003',
  '08006',
  '08001',
  '08004',
]);

/** True when the error means "the database is not reachable", not "the query was wrong". */
export function isConnectionError(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | undefined;
  if (!e) return false;
  if (e.code && CONNECTION_ERROR_CODES.has(e.code)) return true;
  const message = e.message ?? '';
  return /Connection terminated|timeout exceeded when trying to connect|connect ECONNREFUSED|Client has encountered a connection error|the database system is (starting up|shutting down)|Cannot use a pool after calling end|Connection is not established/i.test(
    message,
  );
}

export function databaseUnavailable(): ApiError {
  return ApiError.unavailable(
    'The database is unavailable; retry shortly',
    'database_unavailable',
    { 'retry-after': '2' },
  );
}
