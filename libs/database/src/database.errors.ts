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
  // "Query read timeout": no reply within query_timeout (a frozen server or a partition); the
  // connection still waits for that reply, so it is as good as broken.
  return /Connection terminated|timeout exceeded when trying to connect|Query read timeout|connect ECONNREFUSED|Client has encountered a connection error|the database system is (starting up|shutting down)|Cannot use a pool after calling end|Connection is not established/i.test(
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

/**
 * SQLSTATE class 22 (data exception: a NUL character, an invalid escape in JSON, a number out
 * of range) and 54001 (a value nested too deep): Postgres refused a value that came from a
 * request. That is the client's 400, not the gateway's 500.
 */
export function isRefusedValue(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code === '54001');
}

export function refusedValue(): ApiError {
  return ApiError.badRequest(
    'The request contains a value that cannot be stored (for example a NUL character or an invalid Unicode escape)',
    null,
    'invalid_value',
  );
}
