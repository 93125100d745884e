import { Client } from 'pg';
import { DataSource, DataSourceOptions, MigrationInterface, QueryRunner } from 'typeorm';
import { loadConfig } from '@app/config';
import { createMigrationDataSource, MIGRATION_LOCK_ID, runMigrationsLocked } from '@app/database';
import { MIGRATIONS } from '../migrations';
import { createTestDatabase, dropDatabase, startGateway } from './support/gateway';
import { cliInProcess } from './support/in-process-cli';

/**
 * Migrations are schema work, not gateway queries: DB_STATEMENT_TIMEOUT_MS (10 s by default)
 * cancelled a `migrate` (or a starting gateway) that waited longer than that for the migrations'
 * advisory lock while another process migrated, and a migration step (a VALIDATE or CREATE INDEX
 * on a large credit_ledger) that ran longer. A short timeout stands in for a long migration here.
 * The table-lock wait of a migration stays bounded (lock_timeout), so DDL never queues every
 * request behind a long transaction.
 */

const SHORT_TIMEOUT = { DB_STATEMENT_TIMEOUT_MS: '200' };
const LAST = MIGRATIONS[MIGRATIONS.length - 1].name;

/** The CLI in this process, its log quiet. */
function cli(args: string[], databaseUrl: string, env: Record<string, string> = {}) {
  return cliInProcess(args, databaseUrl, { LOG_LEVEL: 'silent', ...env });
}

async function connect(url: string): Promise<Client> {
  const client = new Client({ connectionString: url });
  await client.connect();
  return client;
}

async function applied(url: string): Promise<string[]> {
  const client = await connect(url);
  try {
    return (await client.query('SELECT name FROM migrations ORDER BY id')).rows.map((r) => r.name);
  } finally {
    await client.end();
  }
}

/**
 * Resolves once a backend of `url`'s database has waited for the migrations' advisory lock for
 * longer than `ms`; rejects when `waiter` settles first (it gave up waiting).
 */
async function waitedForMigrationLock(url: string, ms: number, waiter: Promise<unknown>) {
  let settled = false;
  void waiter.then(
    () => (settled = true),
    () => (settled = true),
  );
  const client = await connect(url);
  try {
    for (;;) {
      if (settled) throw new Error('the waiter finished before it had waited for the lock');
      const { rowCount } = await client.query(
        `SELECT 1 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
          WHERE l.locktype = 'advisory' AND NOT l.granted AND l.objid = $1
            AND a.datname = current_database() AND now() - a.query_start > $2 * interval '1 ms'`,
        [MIGRATION_LOCK_ID, ms],
      );
      if (rowCount) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await client.end();
  }
}

describe('migrations are not bounded by DB_STATEMENT_TIMEOUT_MS', () => {
  let url: string;
  let holder: Client;

  beforeEach(async () => {
    url = await createTestDatabase();
    holder = await connect(url);
    expect((await cli(['migrate:revert'], url)).code).toBe(0);
  });

  afterEach(async () => {
    await holder.end();
    await dropDatabase(url);
  });

  it('migrate waits for the lock as long as another process migrates', async () => {
    await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    const migrating = cli(['migrate'], url, SHORT_TIMEOUT);
    await waitedForMigrationLock(url, 1000, migrating);
    await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
    expect(await migrating).toEqual({ code: 0, out: `Applied 1 migration(s):\n  ${LAST}\n` });
    expect((await applied(url)).at(-1)).toBe(LAST);
  });

  it('a starting gateway waits for the lock too, then applies what is pending', async () => {
    await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    const starting = startGateway({ databaseUrl: url, env: SHORT_TIMEOUT });
    await waitedForMigrationLock(url, 1000, starting);
    await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
    const gateway = await starting;
    try {
      expect((await fetch(`${gateway.url}/health/ready`)).status).toBe(200);
      expect((await applied(url)).at(-1)).toBe(LAST);
    } finally {
      await gateway.close();
    }
  });

  it('migrate:revert waits for the lock as long as another process migrates', async () => {
    expect((await cli(['migrate'], url)).code).toBe(0);
    await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
    const reverting = cli(['migrate:revert'], url, SHORT_TIMEOUT);
    await waitedForMigrationLock(url, 1000, reverting);
    await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
    expect((await reverting).out).toContain(`Reverted ${LAST}.`);
    expect(await applied(url)).not.toContain(LAST);
  });

  it('a migration step may run longer than the statement timeout', async () => {
    class SlowStep1999999999999 implements MigrationInterface {
      name = 'SlowStep1999999999999';
      async up(q: QueryRunner): Promise<void> {
        await q.query('SELECT pg_sleep(1)');
      }
      async down(): Promise<void> {}
    }
    const config = loadConfig({ NODE_ENV: 'test', ...SHORT_TIMEOUT }).database;
    const dataSource = new DataSource({
      ...createMigrationDataSource(url, config).options,
      migrations: [...MIGRATIONS, SlowStep1999999999999],
    } as DataSourceOptions);
    await dataSource.initialize();
    try {
      expect((await runMigrationsLocked(dataSource)).map((m) => m.name)).toEqual([
        LAST,
        'SlowStep1999999999999',
      ]);
    } finally {
      await dataSource.destroy();
    }
  });

  it('a migration that cannot get its table lock gives up after the timeout, and applies later', async () => {
    // A long transaction on the ledger (a pg_dump, a report): the ALTER TABLE waiting behind it
    // would hold up every ledger query queued after it.
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE credit_ledger IN ACCESS SHARE MODE');
    const blocked = await cli(['migrate'], url, SHORT_TIMEOUT);
    expect(blocked.code).toBe(1);
    expect(await applied(url)).not.toContain(LAST);
    await holder.query('COMMIT');
    expect((await cli(['migrate'], url, SHORT_TIMEOUT)).code).toBe(0);
    expect((await applied(url)).at(-1)).toBe(LAST);
  });
});
