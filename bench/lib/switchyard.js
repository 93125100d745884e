'use strict';
// Switchyard under test: a fresh database (created, migrated by our CLI), a providers file
// pointing at the mock upstream, the gateway's environment, and a benchmark user with an
// API key, plenty of credits and high rate limits (created through the admin API, or the
// bootstrap key from API_KEYS when the admin API is not available).
const fs = require('node:fs');
const path = require('node:path');
const { randomBytes } = require('node:crypto');
const { execFileSync, spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..', '..');
const GATEWAY_MAIN = path.join(ROOT, 'dist/apps/gateway/src/main.js');
const CLI_MAIN = path.join(ROOT, 'dist/apps/cli/src/main.js');

/** Model with a price (full pipeline) and one without (billing off: free models skip credits). */
const PRICED_MODEL = 'bench-model';
const FREE_MODEL = 'bench-model-free';
const HIGH_LIMIT = 1_000_000_000;
const CREDITS = 1_000_000_000_000;

/** Builds dist/ like `npm start` does. A failed type check still emits; we warn and go on. */
function ensureBuilt(log) {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts/build-if-needed.js')], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (r.status !== 0) {
    if (!fs.existsSync(GATEWAY_MAIN)) {
      throw new Error(`build failed and ${GATEWAY_MAIN} is missing:\n${r.stdout}${r.stderr}`);
    }
    const errors = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.includes('error TS'));
    log(`warning: the build reported ${errors.length} type error(s); using the emitted dist/`);
    for (const line of errors.slice(0, 5)) log(`  ${line}`);
  }
}

/** The Postgres server the bench creates its databases on (trust auth on this machine). */
function adminDatabaseUrl(env = process.env) {
  return (
    env.BENCH_DATABASE_URL || env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres'
  );
}

function pg() {
  return require(path.join(ROOT, 'node_modules/pg'));
}

function withDatabase(url, name) {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function adminQuery(adminUrl, sql) {
  const client = new (pg().Client)({ connectionString: adminUrl });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

async function createDatabase(adminUrl, stamp) {
  const name = `sy_bench_${stamp}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
  return { name, url: withDatabase(adminUrl, name) };
}

/** Where the server's next WAL record goes, in bytes: two readings give the WAL written between. */
async function walInsertLsn(client) {
  const { rows } = await client.query('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  const [hi, lo] = rows[0].lsn.split('/');
  return parseInt(hi, 16) * 2 ** 32 + parseInt(lo, 16);
}

async function dropDatabase(adminUrl, name) {
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** A per-database Postgres setting; new connections to that database pick it up. */
async function setSynchronousCommit(adminUrl, name, value) {
  if (!['on', 'off'].includes(value)) throw new Error(`bad synchronous_commit ${value}`);
  await adminQuery(adminUrl, `ALTER DATABASE ${name} SET synchronous_commit = ${value}`);
}

/** Applies migrations with our own CLI (`npm run cli -- migrate`). */
function migrate(databaseUrl) {
  return execFileSync(process.execPath, [CLI_MAIN, 'migrate'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn', NODE_ENV: 'development' },
    encoding: 'utf8',
  }).trim();
}

function cliCommands() {
  const r = spawnSync(process.execPath, [CLI_MAIN], { cwd: ROOT, encoding: 'utf8' });
  return `${r.stdout}${r.stderr}`;
}

function writeProvidersFile(dir, mockUrl) {
  const file = path.join(dir, 'providers.yaml');
  fs.writeFileSync(
    file,
    [
      'providers:',
      '  - name: bench-upstream',
      '    kind: openai',
      `    base_url: ${mockUrl}/v1`,
      '    api_key: sk-bench-upstream',
      '    session_auth: none',
      '    priority: 1',
      `    models: [${PRICED_MODEL}, ${FREE_MODEL}]`,
      '    timeout_ms: 30000',
      'pricing:',
      `  - { model: ${PRICED_MODEL}, per_request: 1, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 2 }`,
      '',
    ].join('\n'),
  );
  return file;
}

/** The gateway's environment: production mode, real Postgres and Redis, high limits. */
function gatewayEnv({ port, databaseUrl, redisUrl, redisPrefix, providersFile, logLevel }) {
  const bootstrapKey = `sk-sy-bench${randomBytes(16).toString('hex')}`;
  const adminPassword = `bench-${randomBytes(12).toString('hex')}`;
  return {
    bootstrapKey,
    adminPassword,
    env: {
      NODE_ENV: 'production',
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: redisPrefix,
      JWT_SECRET: randomBytes(32).toString('hex'),
      SESSION_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      ADMIN_PASSWORD: adminPassword,
      PROVIDERS_FILE: providersFile,
      API_KEYS: bootstrapKey,
      BOOTSTRAP_CREDITS: String(CREDITS),
      RATE_LIMIT_PER_MINUTE: String(HIGH_LIMIT),
      RATE_LIMIT_PER_HOUR: String(HIGH_LIMIT),
      // Entries of distinct requests expire soon after the run instead of filling Redis.
      CACHE_DEFAULT_TTL: '900',
      LOG_LEVEL: logLevel,
    },
  };
}

async function call(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body, text };
}

/**
 * Creates the benchmark user and key through the admin API (create-admin via the CLI, a
 * JWT from /auth/token, POST /admin/users, POST /admin/keys). Returns null when that path
 * is not available, with the reason.
 */
async function provisionThroughAdminApi(gatewayUrl, env) {
  if (!/create-admin/.test(cliCommands())) return { key: null, reason: 'no create-admin command' };
  const created = spawnSync(process.execPath, [CLI_MAIN, 'create-admin'], {
    cwd: ROOT,
    env: { ...process.env, ...env, LOG_LEVEL: 'warn' },
    encoding: 'utf8',
  });
  if (created.status !== 0) {
    return { key: null, reason: `create-admin failed: ${created.stderr.trim().slice(0, 200)}` };
  }
  const token = await call(`${gatewayUrl}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password: env.ADMIN_PASSWORD }),
  });
  if (token.status !== 200 || !token.body?.access_token) {
    return { key: null, reason: `POST /auth/token answered ${token.status}` };
  }
  const admin = {
    'content-type': 'application/json',
    authorization: `Bearer ${token.body.access_token}`,
  };
  const user = await call(`${gatewayUrl}/admin/users`, {
    method: 'POST',
    headers: admin,
    body: JSON.stringify({
      username: `bench-${randomBytes(3).toString('hex')}`,
      email: 'bench@example.invalid',
      role: 'user',
      base_quota: CREDITS,
    }),
  });
  const userId = user.body?.id ?? user.body?.user?.id;
  if (user.status >= 300 || !userId) {
    return {
      key: null,
      reason: `POST /admin/users answered ${user.status}: ${user.text.slice(0, 200)}`,
    };
  }
  const key = await call(`${gatewayUrl}/admin/keys`, {
    method: 'POST',
    headers: admin,
    body: JSON.stringify({
      user_id: userId,
      name: 'benchmark',
      scopes: ['chat'],
      rate_limit_per_minute: HIGH_LIMIT,
      rate_limit_per_hour: HIGH_LIMIT,
    }),
  });
  if (key.status >= 300 || !key.body?.key) {
    return {
      key: null,
      reason: `POST /admin/keys answered ${key.status}: ${key.text.slice(0, 200)}`,
    };
  }
  return { key: key.body.key, userId, reason: null };
}

/** Deletes the run's Redis keys (cache entries, counters) by prefix. */
async function cleanRedis(redisUrl, prefix) {
  const Redis = require(path.join(ROOT, 'node_modules/ioredis'));
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await client.connect();
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) deleted += await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

module.exports = {
  ROOT,
  adminDatabaseUrl,
  GATEWAY_MAIN,
  PRICED_MODEL,
  FREE_MODEL,
  ensureBuilt,
  createDatabase,
  dropDatabase,
  walInsertLsn,
  migrate,
  setSynchronousCommit,
  writeProvidersFile,
  gatewayEnv,
  provisionThroughAdminApi,
  cleanRedis,
};
