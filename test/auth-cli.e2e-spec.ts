import { Writable } from 'node:stream';
import { Client } from 'pg';
import { loadConfig } from '@app/config';
import { createGateway, GatewayApp } from '../apps/gateway/src/bootstrap';
import { runCli } from '../apps/cli/src/main';
import { installAuthProbe } from './support/auth-probe';
import { createTestDatabase, dropDatabase, startGateway, TestGateway } from './support/gateway';
import { testEnv } from './support/test-env';

installAuthProbe();

const JWT_SECRET = 'cli-test-jwt-secret-that-is-long-enough-01234';

function baseEnv(databaseUrl: string): Record<string, string> {
  return {
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    ...(testEnv.redisUrl ? { REDIS_URL: testEnv.redisUrl } : {}),
    REDIS_KEY_PREFIX: `cli${Date.now()}:`,
    JWT_SECRET,
    LOG_LEVEL: 'silent',
  };
}

/** Runs `npm run cli -- <args>` in-process; returns exit code and what it printed on stdout. */
async function cli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number; out: string }> {
  const chunks: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
    chunks.push(String(chunk));
    return true;
  });
  const errSpy = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await runCli(args, env as NodeJS.ProcessEnv);
    return { code, out: chunks.join('') };
  } finally {
    spy.mockRestore();
    errSpy.mockRestore();
  }
}

async function login(url: string, username: string, password: string): Promise<number> {
  const res = await fetch(`${url}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ username, password }).toString(),
  });
  return res.status;
}

describe('operator CLI: create-admin and keys:create', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { JWT_SECRET } });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('create-admin refuses an empty or short ADMIN_PASSWORD', async () => {
    const env = baseEnv(gw.databaseUrl);
    expect((await cli(['create-admin'], env)).code).toBe(2);
    const short = await cli(['create-admin'], { ...env, ADMIN_PASSWORD: 'short' });
    expect(short.code).toBe(2);
    expect(short.out).toContain('too short');
  });

  it('create-admin creates user admin, then resets its password', async () => {
    const env = baseEnv(gw.databaseUrl);
    const first = await cli(['create-admin'], { ...env, ADMIN_PASSWORD: 'first-admin-password' });
    expect(first).toEqual({ code: 0, out: expect.stringContaining('Created admin user') });
    expect(await login(gw.url, 'admin', 'first-admin-password')).toBe(200);
    const second = await cli(['create-admin'], { ...env, ADMIN_PASSWORD: 'second-admin-password' });
    expect(second.code).toBe(0);
    expect(second.out).toContain('Reset the password');
    expect(await login(gw.url, 'admin', 'second-admin-password')).toBe(200);
    expect(await login(gw.url, 'admin', 'first-admin-password')).toBe(401);
  });

  it('keys:create prints a working key once, creating the user on request', async () => {
    const env = baseEnv(gw.databaseUrl);
    const refused = await cli(['keys:create', '--user', 'carol'], env);
    expect(refused.code).toBe(1);
    const bad = await cli(['keys:create', '--user', 'carol', '--scopes', 'root'], env);
    expect(bad.code).toBe(2);
    const made = await cli(
      ['keys:create', '--user', 'carol', '--create-user', '--credits', '50', '--scopes', 'chat'],
      env,
    );
    expect(made.code).toBe(0);
    const issued = JSON.parse(made.out);
    expect(issued).toMatchObject({ key: expect.stringMatching(/^sk-sy-/), scopes: ['chat'] });
    const ok = await fetch(`${gw.url}/probe/chat`, { headers: { 'x-api-key': issued.key } });
    expect(ok.status).toBe(200);
    const denied = await fetch(`${gw.url}/probe/images`, { headers: { 'x-api-key': issued.key } });
    expect(denied.status).toBe(403);
    const db = new Client({ connectionString: gw.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(
        `SELECT c.balance FROM users u JOIN user_credits c ON c.user_id = u.id WHERE u.username = 'carol'`,
      );
      expect(rows[0].balance).toBe('50');
      const audit = await db.query(`SELECT actor, action FROM audit_log WHERE actor = 'cli'`);
      expect(audit.rows.map((r) => r.action)).toEqual(
        expect.arrayContaining([
          'admin.create',
          'admin.password_reset',
          'user.create',
          'api_key.create',
        ]),
      );
    } finally {
      await db.end();
    }
  });
});

describe('operator CLI beside a gateway with API_KEYS', () => {
  const bootKey = `sk-sy-${'c1'.repeat(24)}`;
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ env: { JWT_SECRET, API_KEYS: bootKey } });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('leaves the bootstrap keys alone when run from a shell without the same API_KEYS', async () => {
    // The CLI boots the gateway's modules with its own environment; the API_KEYS mirror belongs
    // to the serving process, or a shell without the list revokes every bootstrap key for good.
    const probe = () => fetch(`${gw.url}/probe/chat`, { headers: { 'x-api-key': bootKey } });
    expect((await probe()).status).toBe(200);
    const env = baseEnv(gw.databaseUrl);
    expect(
      (await cli(['create-admin'], { ...env, ADMIN_PASSWORD: 'cli-beside-a-gateway' })).code,
    ).toBe(0);
    const other = `sk-sy-${'d2'.repeat(24)}`;
    const cleared = await cli(['jobs:clear-stuck', '--older-than-minutes', '100000'], {
      ...env,
      API_KEYS: other,
    });
    expect(cleared.code).toBe(0);
    expect((await probe()).status).toBe(200);
    const db = new Client({ connectionString: gw.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(
        `SELECT count(*)::int AS revoked FROM api_keys WHERE name = 'API_KEYS' AND revoked_at IS NOT NULL`,
      );
      expect(rows[0].revoked).toBe(0);
      const listed = await db.query(
        `SELECT count(*)::int AS n FROM api_keys WHERE name = 'API_KEYS'`,
      );
      expect(listed.rows[0].n).toBe(1); // the CLI's own API_KEYS were not added either
    } finally {
      await db.end();
    }
  });
});

describe('embedded first start', () => {
  const started: GatewayApp[] = [];
  const databases: string[] = [];

  async function boot(
    databaseUrl: string,
    tweak: (config: ReturnType<typeof loadConfig>) => void,
  ): Promise<{ gateway: GatewayApp; printed: string; logs: string }> {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const config = loadConfig({
      ...baseEnv(databaseUrl),
      LOG_LEVEL: 'info',
      PORT: '0',
      HOST: '127.0.0.1',
    } as NodeJS.ProcessEnv);
    // The test database stands in for the embedded one; the first-start logic only reads the flag.
    config.database.embedded = true;
    tweak(config);
    const printed: string[] = [];
    const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
      printed.push(String(chunk));
      return true;
    });
    try {
      const gateway = await createGateway(config, sink);
      started.push(gateway);
      return { gateway, printed: printed.join(''), logs: lines.join('') };
    } finally {
      spy.mockRestore();
    }
  }

  afterAll(async () => {
    for (const g of started) await g.shutdown();
    for (const d of databases) await dropDatabase(d).catch(() => undefined);
  });

  it('creates an admin and a dev key with credits, prints them once as development credentials', async () => {
    const databaseUrl = await createTestDatabase();
    databases.push(databaseUrl);
    const first = await boot(databaseUrl, () => undefined);
    expect(first.printed).toContain('DEVELOPMENT CREDENTIALS');
    const password = /password "([^"]+)"/.exec(first.printed)?.[1];
    const key = /API key\s+: (sk-sy-[0-9A-Za-z]+)/.exec(first.printed)?.[1];
    expect(password).toBeDefined();
    expect(key).toBeDefined();
    expect(first.logs).not.toContain(password!);
    expect(first.logs).not.toContain(key!);
    expect(await login(first.gateway.url, 'admin', password!)).toBe(200);
    const res = await fetch(`${first.gateway.url}/probe/chat`, { headers: { 'x-api-key': key! } });
    expect(res.status).toBe(200);
    const db = new Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(
        `SELECT c.balance FROM users u JOIN user_credits c ON c.user_id = u.id WHERE u.username = 'dev'`,
      );
      expect(Number(rows[0].balance)).toBeGreaterThan(0);
    } finally {
      await db.end();
    }
    await first.gateway.shutdown();
    const second = await boot(databaseUrl, () => undefined);
    expect(second.printed).not.toContain('DEVELOPMENT CREDENTIALS');
  });

  it('never creates development credentials in production mode or on a non-empty database', async () => {
    const databaseUrl = await createTestDatabase();
    databases.push(databaseUrl);
    const prod = await boot(databaseUrl, (config) => {
      (config as { production: boolean }).production = true;
    });
    expect(prod.printed).not.toContain('DEVELOPMENT CREDENTIALS');
    const external = await boot(databaseUrl, (config) => {
      config.database.embedded = false;
    });
    expect(external.printed).not.toContain('DEVELOPMENT CREDENTIALS');
    const db = new Client({ connectionString: databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(`SELECT count(*) AS n FROM users`);
      expect(rows[0].n).toBe('0');
    } finally {
      await db.end();
    }
  });
});
