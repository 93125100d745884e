import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { newConsumer } from './support/auth-factory';
import { createTestDatabase, dropDatabase, startGateway } from './support/gateway';
import { testEnv, withDatabase } from './support/test-env';

const ROOT = path.resolve(__dirname, '..');

function script(name: string, args: string[], env: Record<string, string>) {
  const result = spawnSync(path.join(ROOT, 'scripts', name), args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function sql<T = Record<string, unknown>>(url: string, text: string): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

async function emptyDatabase(): Promise<string> {
  const name = `sy_restore_${Math.random().toString(16).slice(2, 10)}`;
  await sql(testEnv.adminDatabaseUrl, `CREATE DATABASE ${name}`);
  return withDatabase(testEnv.adminDatabaseUrl, name);
}

describe('scripts/backup.sh and scripts/restore.sh', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'sy-backups-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('backs up, lists, restores into an empty database with the ledger intact', async () => {
    const gw = await startGateway();
    const source = gw.databaseUrl;
    const target = await emptyDatabase();
    try {
      const alice = await newConsumer(gw, { credits: 750 });
      await newConsumer(gw, { credits: 20 });
      await gw.gateway.shutdown();

      const dry = script('backup.sh', ['--dir', dir, '--dry-run'], { DATABASE_URL: source });
      expect(dry.status).toBe(0);
      expect(dry.stdout).toMatch(/would write .*switchyard-\d{8}T\d{6}Z\.dump/);
      expect(readdirSync(dir)).toEqual([]);

      const backup = script('backup.sh', ['--dir', dir], { DATABASE_URL: source });
      expect(backup.stderr).toBe('');
      expect(backup.status).toBe(0);
      expect(backup.stdout).toMatch(/wrote .*switchyard-.*\.dump \(.*, \d+ tables\)/);
      const list = script('backup.sh', ['--list', '--dir', dir], {});
      expect(list.stdout.trim().split('\n')).toHaveLength(1);

      const restoreDry = script('restore.sh', ['--dir', dir, '--dry-run', 'latest'], {
        DATABASE_URL: target,
      });
      expect(restoreDry.stdout).toMatch(/would restore .* into/);
      expect((await sql(target, `SELECT to_regclass('public.users') AS t`))[0].t).toBeNull();

      const restore = script('restore.sh', ['--dir', dir, 'latest'], { DATABASE_URL: target });
      expect(restore.status).toBe(0);
      expect(restore.stdout).toMatch(/ledger check ok: \d+ balances equal their ledger sums/);
      const [balance] = await sql<{ balance: string }>(
        target,
        `SELECT balance FROM user_credits WHERE user_id = '${alice.userId}'`,
      );
      expect(Number(balance.balance)).toBe(750);
      const [ledger] = await sql<{ n: number }>(
        target,
        `SELECT count(*)::int AS n FROM credit_ledger`,
      );
      expect(ledger.n).toBeGreaterThanOrEqual(2);
    } finally {
      await gw.close();
      await dropDatabase(target);
    }
  });

  it('refuses a restore whose ledger does not add up, with exit code 3', async () => {
    const source = await createTestDatabase();
    const target = await emptyDatabase();
    try {
      await sql(source, `INSERT INTO users (username) VALUES ('broken')`);
      await sql(
        source,
        `INSERT INTO user_credits (user_id, balance) SELECT id, 99 FROM users WHERE username = 'broken'`,
      );
      expect(script('backup.sh', ['--dir', dir], { DATABASE_URL: source }).status).toBe(0);
      const restore = script('restore.sh', ['--dir', dir, 'latest'], { DATABASE_URL: target });
      expect(restore.status).toBe(3);
      expect(restore.stderr).toMatch(/ledger check FAILED: 1 of 1 balances/);
    } finally {
      await dropDatabase(source);
      await dropDatabase(target);
    }
  });

  it('prunes archives older than the retention but never the newest', async () => {
    const old = path.join(dir, 'switchyard-20200101T000000Z.dump');
    const recent = path.join(dir, 'switchyard-20991231T000000Z.dump');
    writeFileSync(old, 'x');
    writeFileSync(recent, 'y');
    const monthAgo = new Date(Date.now() - 30 * 86_400_000);
    utimesSync(old, monthAgo, monthAgo);
    const source = await createTestDatabase();
    try {
      const dry = script('backup.sh', ['--dir', dir, '--retention-days', '7', '--dry-run'], {
        DATABASE_URL: source,
      });
      expect(dry.stdout).toContain(`would delete (older than 7 days):\n  ${old}`);
      expect(existsSync(old)).toBe(true);
      const run = script('backup.sh', ['--dir', dir, '--retention-days', '7'], {
        DATABASE_URL: source,
      });
      expect(run.status).toBe(0);
      expect(run.stdout).toContain(`deleted ${old}`);
      expect(existsSync(old)).toBe(false);
      expect(existsSync(recent)).toBe(true);
      expect(readdirSync(dir)).toHaveLength(2);
    } finally {
      await dropDatabase(source);
    }
  });

  it('answers usage errors with exit code 2', () => {
    expect(script('backup.sh', ['--retention-days', 'soon'], {}).status).toBe(2);
    expect(script('restore.sh', [], {}).status).toBe(2);
    expect(script('backup.sh', ['--bogus'], {}).status).toBe(2);
  });
});
