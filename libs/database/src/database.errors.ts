import { ApiError } from '@app/observability';

/**
 * Connection failures, by whether a statement can have run: `not_sent` when no connection could
 * be made, `lost` when the connection broke (or its reply did not come in time) with a statement
 * out, which the server may have run and committed unseen.
 */
type ConnectionFailure = 'not_sent' | 'lost';

const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  '57P03', // cannot_connect_now
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08004', // sqlserver_rejected_establishment_of_sqlconnection
]);
const LOST_CODES = new Set([
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '08000',
  '08003',
  '08006',
]);
const NOT_SENT_MESSAGE =
  /timeout exceeded when trying to connect|connect ECONNREFUSED|Cannot use a pool after calling end|Connection is not established|the database system is (starting up|shutting down)/i;
// "Query read timeout": no reply within query_timeout (a frozen server or a partition); the
// connection still waits for that reply, so it is as good as broken.
const LOST_MESSAGE =
  /Connection terminated|Query read timeout|Client has encountered a connection error/i;

function connectionFailure(error: unknown): ConnectionFailure | null {
  const e = error as { code?: string; message?: string } | undefined;
  if (!e) return null;
  if (e.code && NOT_SENT_CODES.has(e.code)) return 'not_sent';
  if (e.code && LOST_CODES.has(e.code)) return 'lost';
  const message = e.message ?? '';
  if (NOT_SENT_MESSAGE.test(message)) return 'not_sent';
  return LOST_MESSAGE.test(message) ? 'lost' : null;
}

/** True when the error means "the database is not reachable", not "the query was wrong". */
export function isConnectionError(error: unknown): boolean {
  return connectionFailure(error) !== null;
}

/** A connection failure after which the statement may have committed, unseen. */
export function mayHaveRun(error: unknown): boolean {
  return connectionFailure(error) === 'lost';
}

const unanswered = new WeakSet<object>();

/**
 * The 503 of a statement that was sent and never answered. A caller whose write must not be lost
 * or doubled (a credit hold) asks `isUnanswered` and settles the doubt later.
 */
export function databaseUnanswered(): ApiError {
  const error = databaseUnavailable();
  unanswered.add(error);
  return error;
}

export function isUnanswered(error: unknown): boolean {
  return typeof error === 'object' && error !== null && unanswered.has(error);
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
