import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Client } from 'pg';
import pino from 'pino';
import { DataSource } from 'typeorm';
import { EmbeddedPostgres } from '../../libs/database/src/embedded-postgres';
import { MIGRATIONS } from '../../migrations';
import { ensureUiBuilt } from '../admin-ui.helpers';
import { startRedisServer } from './redis-server';
import { withDatabase } from './test-env';

const ROOT = path.resolve(__dirname, '../..');
const CI = process.env.CI === 'true';

function migrationsHash(): string {
  const dir = path.join(ROOT, 'migrations');
  const hash = createHash('sha256');
  for (const file of readdirSync(dir).sort())
    hash.update(file).update(readFileSync(path.join(dir, file)));
  return hash.digest('hex').slice(0, 12);
}

async function reachable(url: string): Promise<boolean> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function preparePostgres(): Promise<void> {
  let adminUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (adminUrl) {
    if (!(await reachable(adminUrl))) {
      throw new Error(
        `Postgres at ${adminUrl.replace(/:[^:@/]*@/, ':***@')} is not reachable; tests need a real Postgres`,
      );
    }
  } else {
    const embedded = new EmbeddedPostgres(
      path.join(ROOT, '.data/test-pg'),
      54330,
      pino({ level: 'warn' }),
    );
    process.stdout.write('[test] no DATABASE_URL: starting embedded Postgres in .data/test-pg\n');
    adminUrl = withDatabase(await embedded.start(), 'postgres');
    (globalThis as Record<string, unknown>).__SY_EMBEDDED_PG__ = embedded;
  }
  const template = `sy_tpl_${migrationsHash()}`;
  const admin = new Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // One test run at a time builds the template; a concurrent run waits on the lock.
    await admin.query('SELECT pg_advisory_lock(727274)');
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
    if (exists.rowCount === 0) {
      await admin.query(`CREATE DATABASE ${template}`);
      const ds = new DataSource({
        type: 'postgres',
        url: withDatabase(adminUrl, template),
        migrations: MIGRATIONS,
        migrationsTableName: 'migrations',
      });
      await ds.initialize();
      await ds.runMigrations({ transaction: 'each' });
      await ds.destroy();
    }
    await admin.query('SELECT pg_advisory_unlock(727274)');
  } finally {
    await admin.end();
  }
  process.env.SY_TEST_ADMIN_DB_URL = adminUrl;
  process.env.SY_TEST_TEMPLATE_DB = template;
}

async function prepareRedis(): Promise<void> {
  if (process.env.REDIS_URL) {
    process.env.SY_TEST_REDIS_URL = process.env.REDIS_URL;
    return;
  }
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], {
    encoding: 'utf8',
  }).stdout.trim();
  if (!found) {
    const message = '[test] no REDIS_URL and no redis-server on PATH: Redis suites will be SKIPPED';
    if (CI) throw new Error(`${message} — refused under CI=true`);
    process.stdout.write(`\n${'!'.repeat(80)}\n${message}\n${'!'.repeat(80)}\n`);
    process.env.SY_TEST_REDIS_URL = '';
    return;
  }
  const server = await startRedisServer();
  (globalThis as Record<string, unknown>).__SY_REDIS__ = server;
  process.env.SY_TEST_REDIS_URL = server.url;
}

export default async function globalSetup(): Promise<void> {
  await preparePostgres();
  await prepareRedis();
  // Every gateway the tests boot serves /admin/ui; build it once (as `npm start` does) so a clean
  // clone's suites meet the real console rather than "not built".
  ensureUiBuilt();
}
