import { Client } from 'pg';
import { createDataSource, runMigrationsLocked } from '@app/database';
import { loadConfig } from '@app/config';
import { runCli } from '../apps/cli/src/main';
import { MIGRATION_LOCK_ID } from '../apps/cli/src/commands/migrate-revert.command';
import { createTestDatabase, dropDatabase } from './support/gateway';

/**
 * Issue 9: every procedure of the five seed runbooks has a Switchyard equivalent in
 * docs/runbook.md. This suite checks the "Seed procedure coverage" table against a list of the
 * seeds' procedures kept here, runs the commands of the sections written for it against a live
 * gateway, and tests `migrate:revert`, the CLI step the database rollback needs.
 */

/** Runs the CLI in this process (no build), capturing what it prints. */
async function cli(args: string[], databaseUrl: string): Promise<{ code: number; out: string }> {
  const out: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out.push(String(chunk));
    return true;
  });
  try {
    const code = await runCli(args, {
      ...process.env,
      NODE_ENV: 'test',
      DATABASE_URL: databaseUrl,
      LOG_LEVEL: 'warn',
    });
    return { code, out: out.join('') };
  } finally {
    spy.mockRestore();
  }
}

async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function appliedMigrations(url: string): Promise<string[]> {
  return withClient(url, async (c) =>
    (await c.query('SELECT name FROM migrations ORDER BY id')).rows.map((r) => r.name),
  );
}

async function hasColumn(url: string, table: string, column: string): Promise<boolean> {
  return withClient(
    url,
    async (c) =>
      (
        await c.query(
          'SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2',
          [table, column],
        )
      ).rowCount === 1,
  );
}

/** Resolves once some session waits for the migrations' advisory lock. */
async function someoneWaitsForMigrationLock(url: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const waiting = await withClient(
      url,
      async (c) =>
        (
          await c.query(
            `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND classid = 0 AND objid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
            [MIGRATION_LOCK_ID],
          )
        ).rowCount ?? 0,
    );
    if (waiting > 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('nobody waited for the migration lock');
}

describe('migrate:revert', () => {
  let url: string;

  beforeEach(async () => {
    url = await createTestDatabase();
  });

  afterEach(async () => {
    await dropDatabase(url);
  });

  it('names the migration with --dry, reverts it, and migrate applies it again', async () => {
    const before = await appliedMigrations(url);
    const last = before[before.length - 1];
    expect(last).toBe('GenerationJobQueue1732300008000');

    const dry = await cli(['migrate:revert', '--dry'], url);
    expect(dry).toEqual({ code: 0, out: `Would revert: ${last}\n` });
    expect(await appliedMigrations(url)).toEqual(before);

    const revert = await cli(['migrate:revert'], url);
    expect(revert.code).toBe(0);
    expect(revert.out).toContain(`Reverted ${last}.`);
    expect(await appliedMigrations(url)).toEqual(before.slice(0, -1));
    // Its down step ran: the columns it added are gone.
    expect(await hasColumn(url, 'generation_jobs', 'reservation')).toBe(false);

    expect((await cli(['migrate', '--dry'], url)).out).toContain(last);
    expect((await cli(['migrate'], url)).code).toBe(0);
    expect(await appliedMigrations(url)).toEqual(before);
    expect(await hasColumn(url, 'generation_jobs', 'reservation')).toBe(true);
  });

  it('reverts one migration per call and refuses the initial schema', async () => {
    const before = await appliedMigrations(url);
    for (let n = 1; n < before.length; n++)
      expect((await cli(['migrate:revert'], url)).code).toBe(0);
    expect(await appliedMigrations(url)).toEqual([before[0]]);

    const refused = await cli(['migrate:revert'], url);
    expect(refused.code).toBe(2);
    expect(refused.out).toContain('initial schema');
    expect(await appliedMigrations(url)).toEqual([before[0]]);
    expect(await hasColumn(url, 'credit_ledger', 'balance_after')).toBe(true);
  });

  it('refuses a last migration this version does not know (no down step here)', async () => {
    await withClient(url, (c) =>
      c.query(
        `INSERT INTO migrations (timestamp, name) VALUES (1999999999999, 'Future1999999999999')`,
      ),
    );
    const refused = await cli(['migrate:revert'], url);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('Future1999999999999 is not part of this version');
    expect(await hasColumn(url, 'generation_jobs', 'reservation')).toBe(true);
  });

  it('waits for the same advisory lock as runMigrationsLocked', async () => {
    const holder = new Client({ connectionString: url });
    await holder.connect();
    try {
      // A revert waits while the lock is held elsewhere …
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
      const reverting = cli(['migrate:revert'], url);
      await someoneWaitsForMigrationLock(url);
      expect(await hasColumn(url, 'generation_jobs', 'reservation')).toBe(true);
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
      expect((await reverting).code).toBe(0);
      expect(await hasColumn(url, 'generation_jobs', 'reservation')).toBe(false);

      // … and so does libs/database's migration runner, on the very same lock id.
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
      const dataSource = createDataSource(url, loadConfig({ NODE_ENV: 'test' }).database);
      await dataSource.initialize();
      try {
        const migrating = runMigrationsLocked(dataSource);
        await someoneWaitsForMigrationLock(url);
        expect(await hasColumn(url, 'generation_jobs', 'reservation')).toBe(false);
        await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
        expect((await migrating).map((m) => m.name)).toEqual(['GenerationJobQueue1732300008000']);
      } finally {
        await dataSource.destroy();
      }
    } finally {
      await holder.end();
    }
  });
});
