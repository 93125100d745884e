import { ApiError } from '@app/observability';
import { isUuid } from './uuid';

/**
 * Lists are ordered by (created_at, id) descending. The cursor is the id of the last row of the
 * previous page; the repository compares against that row's own created_at inside Postgres, so
 * no precision is lost going through a JavaScript Date (microseconds).
 */
export type PageCursor = string;

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

export function decodeCursor(cursor: string | undefined): PageCursor | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!isUuid(id)) throw ApiError.badRequest('cursor is not valid', 'cursor', 'invalid_cursor');
  return id;
}

export function parseLimit(limit: string | undefined): number {
  if (limit === undefined || limit === '') return DEFAULT_PAGE_SIZE;
  const n = Number(limit);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE)
    throw ApiError.badRequest(`limit must be an integer between 1 and ${MAX_PAGE_SIZE}`, 'limit');
  return n;
}

/** SQL condition "after the cursor row" for a table ordered by (created_at, id) descending. */
export function afterCursorSql(table: string, placeholder: string, alias = ''): string {
  const col = alias ? `${alias}.` : '';
  return `(${col}created_at, ${col}id) < (SELECT c.created_at, c.id FROM ${table} c WHERE c.id = ${placeholder})`;
}

/** Fetch `limit + 1` rows, then call this: the extra row only says a next page exists. */
export function toPage<R extends { id: string }, V>(
  rows: R[],
  limit: number,
  view: (row: R) => V,
): { data: V[]; next_cursor: string | null } {
  const page = rows.slice(0, limit);
  const more = rows.length > limit;
  return {
    data: page.map(view),
    next_cursor:
      more && page.length > 0
        ? Buffer.from(page[page.length - 1].id, 'utf8').toString('base64url')
        : null,
  };
}
