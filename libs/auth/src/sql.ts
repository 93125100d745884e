import { DatabaseService, Queryable } from '@app/database';

/**
 * Runs on the caller's transaction when given one, else on the pool (measured, fail-fast).
 * TypeORM answers UPDATE and DELETE with `[rows, affectedCount]` instead of `rows`; this
 * returns the rows for every statement so RETURNING reads the same everywhere.
 */
export async function runSql<T>(
  db: DatabaseService,
  tx: Queryable | undefined,
  text: string,
  params: unknown[],
  operation?: string,
): Promise<T[]> {
  const result: unknown = tx
    ? await tx.query(text, params)
    : await db.query(text, params, operation);
  if (
    Array.isArray(result) &&
    result.length === 2 &&
    Array.isArray(result[0]) &&
    typeof result[1] === 'number' &&
    /^\s*(UPDATE|DELETE)\b/i.test(text)
  )
    return result[0] as T[];
  return result as T[];
}
