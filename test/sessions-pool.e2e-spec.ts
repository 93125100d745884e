import { createHash } from 'node:crypto';
import { Client } from 'pg';
import { SessionPoolService, SessionsService } from '@app/sessions';
import { runCli } from '../apps/cli/src/main';
import { createTestDatabase, dropDatabase, startGateway, TestGateway } from './support/gateway';
import { writeProvidersFile } from './support/mock-upstream';
import { SessionUpstream } from './support/session-upstream';
import { relayDatabase } from './support/tcp-proxy';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

async function waitFor(
  predicate: () => Promise<boolean> | boolean,
  timeoutMs = 15000,
  stepMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error('condition not met in time');
}

async function sql<T = Record<string, unknown>>(
  url: string,
  text: string,
  params: unknown[] = [],
): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}

const POLICY_ENV = {
  SESSION_FAILURE_WINDOW: '10',
  SESSION_FAILURE_MIN_SAMPLE: '3',
  SESSION_FAILURE_RATE_THRESHOLD: '0.5',
  SESSION_COOLDOWN_SECONDS: '60',
};

describe('session pool: storage, rotation and health (service API)', () => {
  let gw: TestGateway;
  let pool: SessionPoolService;
  let sessions: SessionsService;

  beforeAll(async () => {
    gw = await startGateway({ env: POLICY_ENV });
    pool = gw.gateway.app.get(SessionPoolService);
    sessions = gw.gateway.app.get(SessionsService);
  });
  afterAll(async () => {
    await gw.close();
  });

  const add = (provider: string, credential: string) =>
    sessions.add({ provider, credential, metadata: { source: 'test' } }, 'test');

  it('stores credentials encrypted with AES-256-GCM and hashed with sha256', async () => {
    const credential = 'sso=at-rest-secret-0123456789abcdef';
    const view = await add('at-rest', credential);
    const [row] = await sql<{ cookie_text: string; cookie_hash: string }>(
      gw.databaseUrl,
      'SELECT cookie_text, cookie_hash FROM sessions WHERE id = $1',
      [view.id],
    );
    expect(row.cookie_text).toMatch(/^enc:v1:[^:]+:[^:]+:[^:]+$/);
    expect(row.cookie_text).not.toContain('at-rest-secret');
    expect(row.cookie_hash).toBe(sha256(credential));
    expect(view.credential_preview).toBe('sso=…cdef');
    expect(JSON.stringify(view)).not.toContain('at-rest-secret');
    const lease = await pool.acquire('at-rest');
    expect(lease).toEqual({ id: view.id, provider: 'at-rest', credential });
  });

  it('refuses the same credential twice with 409', async () => {
    await add('dup', 'sso=duplicate-credential-value');
    await expect(add('dup', 'sso=duplicate-credential-value')).rejects.toMatchObject({
      status: 409,
      code: 'duplicate_session',
    });
  });

  it('rotates least-recently-used first across every healthy session', async () => {
    const ids = [];
    for (const n of [1, 2, 3]) ids.push((await add('rotate', `sso=rotate-${n}-credential`)).id);
    const seen: string[] = [];
    for (let i = 0; i < 9; i++) seen.push((await pool.acquire('rotate')).id);
    for (const id of ids) expect(seen.filter((s) => s === id)).toHaveLength(3);
    // Strict round robin: each window of three takes every session once.
    for (let i = 0; i < 9; i += 3) expect(new Set(seen.slice(i, i + 3)).size).toBe(3);
  });

  it('hands different sessions to concurrent callers', async () => {
    for (const n of [1, 2, 3, 4]) await add('concurrent', `sso=concurrent-${n}-credential`);
    const leases = await Promise.all([1, 2, 3, 4].map(() => pool.acquire('concurrent')));
    expect(new Set(leases.map((l) => l.id)).size).toBe(4);
  });

  it('quarantines a session whose failure rate crosses the threshold and moves traffic away', async () => {
    const bad = await add('flaky', 'sso=flaky-bad-credential');
    const good = await add('flaky', 'sso=flaky-good-credential');
    await pool.report(bad.id, 'success');
    await pool.flush();
    await pool.report(bad.id, 500);
    expect((await sessions.get(bad.id)).status).toBe('healthy');
    await pool.report(bad.id, undefined); // transport error
    const after = await sessions.get(bad.id);
    expect(after.status).toBe('quarantined');
    expect(after.failure_rate).toBeCloseTo(2 / 3);
    expect(after.quarantined_at).not.toBeNull();
    for (let i = 0; i < 4; i++) expect((await pool.acquire('flaky')).id).toBe(good.id);
    expect(gw.logText()).toContain('session quarantined');
  });

  it('expires a session on upstream 401/403', async () => {
    const s = await add('refused', 'sso=refused-credential');
    await pool.report(s.id, 401);
    expect((await sessions.get(s.id)).status).toBe('expired');
    expect(await pool.tryAcquire('refused')).toBeNull();
    const t = await add('refused', 'sso=forbidden-credential');
    await pool.report(t.id, 403);
    expect((await sessions.get(t.id)).status).toBe('expired');
  });

  it('rests a session after upstream 429 without quarantining it', async () => {
    const s = await add('limited', 'sso=limited-credential');
    for (let i = 0; i < 5; i++) await pool.report(s.id, 429);
    const view = await sessions.get(s.id);
    expect(view.status).toBe('healthy');
    expect(view.failure_count).toBe(0);
    expect(Date.parse(view.cooldown_until!)).toBeGreaterThan(Date.now() + 30_000);
    expect(await pool.tryAcquire('limited')).toBeNull();
    await sessions.activate(s.id, 'test');
    expect((await pool.acquire('limited')).id).toBe(s.id);
  });

  it('honours expires_at', async () => {
    const s = await sessions.add(
      {
        provider: 'dated',
        credential: 'sso=dated-credential',
        expiresAt: new Date(Date.now() + 500),
      },
      'test',
    );
    expect((await pool.acquire('dated')).id).toBe(s.id);
    await new Promise((r) => setTimeout(r, 700));
    expect(await pool.tryAcquire('dated')).toBeNull();
    expect((await sessions.list()).find((v) => v.id === s.id)?.status).toBe('expired');
  });

  it('answers 503 no_healthy_sessions when the provider has none', async () => {
    await expect(pool.acquire('nobody')).rejects.toMatchObject({
      status: 503,
      code: 'no_healthy_sessions',
      type: 'service_unavailable',
    });
  });

  it('picks up a session inserted by hand as in seed 000 and encrypts it', async () => {
    await sql(
      gw.databaseUrl,
      `INSERT INTO sessions (cookie_text, cookie_hash, provider, status)
       VALUES ('sso=YOUR_COOKIE_HERE', encode(sha256('sso=YOUR_COOKIE_HERE'::bytea), 'hex'), 'grok', 'healthy')`,
    );
    const lease = await pool.acquire('grok');
    expect(lease.credential).toBe('sso=YOUR_COOKIE_HERE');
    await waitFor(async () => {
      const [row] = await sql<{ cookie_text: string }>(
        gw.databaseUrl,
        `SELECT cookie_text FROM sessions WHERE provider = 'grok'`,
      );
      return row.cookie_text.startsWith('enc:v1:');
    }, 5000);
    const again = await pool.acquire('grok');
    expect(again.credential).toBe('sso=YOUR_COOKIE_HERE');
  });

  it('reports sessions by provider and status in metrics and /health/detailed', async () => {
    await pool.refreshGauges();
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_active_sessions\{provider="flaky",status="quarantined"\} 1/);
    expect(metrics).toMatch(/gateway_active_sessions\{provider="refused",status="healthy"\} 0/);
    expect(metrics).toMatch(/gateway_session_rotations_total\{provider="rotate"\} 9/);
    const detailed = (await (await fetch(`${gw.url}/health/detailed`)).json()) as {
      components: { name: string; details: { providers: Record<string, unknown> } }[];
    };
    const component = detailed.components.find((c: { name: string }) => c.name === 'session_pool');
    expect(component?.details.providers.flaky).toMatchObject({ healthy: 1, quarantined: 1 });
  });

  it('never writes a credential to the logs', () => {
    const text = gw.logText();
    for (const secret of ['at-rest-secret', 'flaky-bad-credential', 'YOUR_COOKIE_HERE', 'rotate-1'])
      expect(text).not.toContain(secret);
  });
});

describe('session pool: a seed-000 row inserted before startup', () => {
  it('is encrypted in place when the gateway starts', async () => {
    const databaseUrl = await createTestDatabase();
    try {
      await sql(
        databaseUrl,
        `INSERT INTO sessions (cookie_text, cookie_hash, provider, status)
         VALUES ('sso=BEFORE_START', encode(sha256('sso=BEFORE_START'::bytea), 'hex'), 'grok', 'healthy')`,
      );
      const gw = await startGateway({ databaseUrl });
      try {
        await waitFor(async () => {
          const rows = await sql(
            databaseUrl,
            `SELECT 1 FROM sessions WHERE cookie_text NOT LIKE 'enc:v1:%'`,
          );
          return rows.length === 0;
        }, 5000);
        const [row] = await sql<{ cookie_hash: string }>(
          databaseUrl,
          'SELECT cookie_hash FROM sessions',
        );
        expect(row.cookie_hash).toBe(sha256('sso=BEFORE_START'));
        const lease = await gw.gateway.app.get(SessionPoolService).acquire('grok');
        expect(lease.credential).toBe('sso=BEFORE_START');
        expect(gw.logText()).not.toContain('BEFORE_START');
      } finally {
        await gw.close();
      }
    } finally {
      await dropDatabase(databaseUrl);
    }
  });
});

describe('session health-check loop', () => {
  let upstream: SessionUpstream;
  let providersFile: string;
  beforeAll(async () => {
    upstream = await new SessionUpstream().start();
    providersFile = writeProvidersFile(
      [
        'providers:',
        '  - name: probed',
        '    kind: openai',
        `    base_url: ${upstream.url}`,
        '    session_auth: bearer',
        '    models: [probe-model]',
        '    timeout_ms: 2000',
        '',
      ].join('\n'),
    );
  });
  afterAll(async () => {
    await upstream.stop();
  });

  it('probes quarantined sessions and reactivates the ones whose upstream heals', async () => {
    const databaseUrl = await createTestDatabase();
    const gw = await startGateway({
      databaseUrl,
      env: { ...POLICY_ENV, SESSION_HEALTH_CHECK_INTERVAL: '1', PROVIDERS_FILE: providersFile },
    });
    try {
      const sessions = gw.gateway.app.get(SessionsService);
      const healing = await sessions.add(
        { provider: 'probed', credential: 'tok-healing-0001' },
        't',
      );
      const dead = await sessions.add({ provider: 'probed', credential: 'tok-dead-000002' }, 't');
      await sessions.quarantine(healing.id, 't');
      await sessions.quarantine(dead.id, 't');
      upstream.behaviour.set('tok-healing-0001', 'error');
      upstream.behaviour.set('tok-dead-000002', 'unauthorized');
      await waitFor(() => upstream.count('tok-healing-0001', '/models') >= 1);
      await waitFor(async () => (await sessions.get(dead.id)).status === 'expired');
      expect((await sessions.get(healing.id)).status).toBe('quarantined');
      expect((await sessions.get(healing.id)).last_checked_at).not.toBeNull();

      upstream.behaviour.set('tok-healing-0001', 'ok');
      await waitFor(async () => (await sessions.get(healing.id)).status === 'healthy');
      const text = gw.logText();
      expect(text.match(/Health check loop started/g)).toHaveLength(1);
      expect(text).toContain('Health check complete');
      expect(text).toContain('session reactivated by health check');
      expect(text).not.toContain('tok-healing-0001');
    } finally {
      await gw.close();
      await dropDatabase(databaseUrl);
    }
  });

  it('runs on exactly one of two replicas, and the other takes over when it stops', async () => {
    const databaseUrl = await createTestDatabase();
    const env = { SESSION_HEALTH_CHECK_INTERVAL: '1' };
    const first = await startGateway({ databaseUrl, env });
    await waitFor(() => first.logText().includes('Health check loop started'));
    const second = await startGateway({ databaseUrl, env });
    let secondClosed = false;
    try {
      await waitFor(() => (first.logText().match(/Health check complete/g) ?? []).length >= 3);
      expect(second.logText()).not.toContain('Health check loop started');
      expect(second.logText()).not.toContain('Health check complete');

      await first.close();
      await waitFor(() => second.logText().includes('Health check loop started'), 10000);
      await waitFor(() => second.logText().includes('Health check complete'), 10000);
      await second.close();
      secondClosed = true;
    } finally {
      await first.close();
      if (!secondClosed) await second.close();
      await dropDatabase(databaseUrl);
    }
  });

  it('another replica takes over from a leader that stopped answering (host dead, cut off)', async () => {
    // A leader whose host dies or is cut off closes nothing: Postgres keeps its connection, and
    // the lock, until TCP keepalive gives up (about 2 h by default). Its database traffic goes
    // through a relay that the test freezes: the connection stays open and goes silent.
    const databaseUrl = await createTestDatabase();
    const relay = await relayDatabase(databaseUrl);
    const env = { SESSION_HEALTH_CHECK_INTERVAL: '1' };
    const first = await startGateway({ databaseUrl: relay.url, env });
    let second: TestGateway | undefined;
    try {
      await waitFor(() => first.logText().includes('Health check loop started'));
      second = await startGateway({ databaseUrl, env });
      const follower = second;
      await waitFor(() => (first.logText().match(/Health check complete/g) ?? []).length >= 2);
      expect(follower.logText()).not.toContain('Health check loop started');

      relay.proxy.freeze();
      // Silent for 3 intervals, at least 10 s: the follower ends the holder's connection.
      await waitFor(() => follower.logText().includes('Health check loop started'), 30000);
      expect(follower.logText()).toContain('leader stopped answering');
      await waitFor(() => follower.logText().includes('Health check complete'), 10000);
    } finally {
      relay.proxy.thaw();
      await first.close();
      await second?.close();
      await relay.proxy.cut();
      await dropDatabase(databaseUrl);
    }
  });

  it('does not run when the interval is huge (safe mode) beyond saying it started', async () => {
    const gw = await startGateway({ env: { SESSION_HEALTH_CHECK_INTERVAL: '999999' } });
    try {
      await waitFor(() => gw.logText().includes('Health check loop started'));
      await new Promise((r) => setTimeout(r, 1500));
      expect(gw.logText()).not.toContain('Health check complete');
    } finally {
      await gw.close();
    }
  });
});

describe('sessions:reencrypt', () => {
  const OLD_KEY = 'a'.repeat(64);
  const NEW_KEY = 'b'.repeat(64);

  it('moves every stored credential to the new key', async () => {
    const databaseUrl = await createTestDatabase();
    const gw = await startGateway({ databaseUrl, env: { SESSION_ENCRYPTION_KEY: OLD_KEY } });
    const sessions = gw.gateway.app.get(SessionsService);
    await sessions.add({ provider: 'rekey', credential: 'sso=rekey-one-credential' }, 't');
    await sessions.add({ provider: 'rekey', credential: 'sso=rekey-two-credential' }, 't');
    const before = await sql<{ cookie_text: string }>(
      databaseUrl,
      'SELECT cookie_text FROM sessions',
    );
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: undefined,
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      SESSION_ENCRYPTION_KEY: NEW_KEY,
      SESSION_ENCRYPTION_KEY_PREVIOUS: OLD_KEY,
    } as NodeJS.ProcessEnv;
    const output: string[] = [];
    const write = jest
      .spyOn(process.stdout, 'write')
      .mockImplementation((chunk: string | Uint8Array) => {
        output.push(String(chunk));
        return true;
      });
    let code: number;
    try {
      code = await runCli(['sessions:reencrypt'], env);
    } finally {
      write.mockRestore();
    }
    expect(code).toBe(0);
    expect(output.join('')).toContain('re-encrypted: 2');
    const after = await sql<{ cookie_text: string }>(
      databaseUrl,
      'SELECT cookie_text FROM sessions',
    );
    for (const row of after) {
      expect(row.cookie_text).toMatch(/^enc:v1:/);
      expect(before.map((b) => b.cookie_text)).not.toContain(row.cookie_text);
    }
    await gw.close();

    // A gateway with only the new key reads them.
    const fresh = await startGateway({ databaseUrl, env: { SESSION_ENCRYPTION_KEY: NEW_KEY } });
    try {
      const lease = await fresh.gateway.app.get(SessionPoolService).acquire('rekey');
      expect(lease.credential).toMatch(/^sso=rekey-(one|two)-credential$/);
    } finally {
      await fresh.close();
      await dropDatabase(databaseUrl);
    }
  });
});
