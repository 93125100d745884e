import { ApiError } from '@app/observability';

/** Position after the last row of a page; pages are ordered by (created_at, id) descending. */
export interface JobCursor {
  createdAt: Date;
  id: string;
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** A malformed id in a path is the client's mistake (400); a well-formed unknown id is a 404. */
export function requireJobId(value: string): string {
  if (!isUuid(value)) throw ApiError.badRequest('id must be a UUID', 'id', 'invalid_id');
  return value.toLowerCase();
}

export function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`, 'utf8').toString('base64url');
}

/**
 * The dates a cursor may carry: years 1 to 9999. JavaScript parses dates from 271821 BC, which
 * Postgres's timestamptz (from 4713 BC) refuses; no job was created outside these years anyway.
 */
const EARLIEST_CURSOR_MS = Date.parse('0001-01-01T00:00:00.000Z');
const LATEST_CURSOR_MS = Date.parse('9999-12-31T23:59:59.999Z');

export function decodeCursor(cursor: string | undefined): JobCursor | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at ?? '');
  const time = createdAt.getTime();
  // NaN fails both comparisons.
  if (!isUuid(id) || !(time >= EARLIEST_CURSOR_MS && time <= LATEST_CURSOR_MS))
    throw ApiError.badRequest('cursor is not valid', 'cursor', 'invalid_cursor');
  return { createdAt, id };
}

export function parseLimit(limit: string | undefined): number {
  if (limit === undefined || limit === '') return DEFAULT_PAGE_SIZE;
  const n = Number(limit);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE)
    throw ApiError.badRequest(`limit must be an integer between 1 and ${MAX_PAGE_SIZE}`, 'limit');
  return n;
}
