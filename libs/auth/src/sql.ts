import { DatabaseService, Queryable } from '@app/database';

/** Runs on the caller's transaction when given one, else on the pool (measured, fail-fast). */
export async function runSql<T>(
  db: DatabaseService,
  tx: Queryable | undefined,
  text: string,
  params: unknown[],
  operation?: string,
): Promise<T[]> {
  return tx ? tx.query<T>(text, params) : db.query<T>(text, params, operation);
}
