import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { runCli } from '../apps/cli/src/main';
import { adminToken, newConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, writeProvidersFile } from './support/mock-upstream';
import { startRedisServer } from './support/redis-server';
import { testEnv } from './support/test-env';

const JWT_SECRET = 'breaker-test-jwt-secret-that-is-long-enough-0123';

interface Breaker {
  name: string;
  state: 'closed' | 'open' | 'half_open';
  failures: number;
  successRate: number | null;
  p95LatencyMs: number | null;
  openedAt: string | null;
  nextAttemptAt: string | null;
  forced: boolean;
}

async function waitFor(predicate: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

function providersYaml(flaky: MockUpstream, backup: MockUpstream): string {
  return `
providers:
  - name: flaky
    kind: openai
    base_url: ${flaky.url}
    priority: 1
    models: [cb-gpt, cb-only]
    timeout_ms: 2000
  - name: backup
    kind: openai
    base_url: ${backup.url}
    priority: 2
    models: [cb-gpt]
    timeout_ms: 2000
`;
}

class Client {
  readonly sdk: OpenAI;
  constructor(
    readonly gw: TestGateway,
    key: string,
    private readonly adminJwt: string,
  ) {
    this.sdk = new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  }

  /** POSTs a chat request; returns status, error code, provider and Retry-After. */
  async chat(model: string) {
    const res = await fetch(`${this.gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${this.sdk.apiKey}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }] }),
    });
    const body = await res.json();
    return {
      status: res.status,
      code: body.error?.code as string | undefined,
      provider: res.headers.get('x-provider'),
      retryAfter: res.headers.get('retry-after'),
    };
  }

  async admin(method: string, path: string, body?: unknown) {
    const res = await fetch(`${this.gw.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.adminJwt}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  }

  async breakers(): Promise<Breaker[]> {
    const { status, body } = await this.admin('GET', '/admin/circuit-breakers');
    expect(status).toBe(200);
    return body.data;
  }

  async breaker(name: string): Promise<Breaker> {
    const found = (await this.breakers()).find((b) => b.name === name);
    if (!found) throw new Error(`no breaker ${name}`);
    return found;
  }
}

describe('circuit breakers shared by two replicas', () => {
  let flaky: MockUpstream;
  let backup: MockUpstream;
  let a: TestGateway;
  let b: TestGateway;
  let clientA: Client;
  let clientB: Client;
  const prefix = `cb${randomBytes(4).toString('hex')}:`;
  let env: Record<string, string>;

  beforeAll(async () => {
    if (!testEnv.redisUrl) throw new Error('these tests need Redis (REDIS_URL or redis-server)');
    flaky = await startMockUpstream('flaky');
    backup = await startMockUpstream('backup');
    env = {
      PROVIDERS_FILE: writeProvidersFile(providersYaml(flaky, backup)),
      CB_FAILURE_THRESHOLD: '3',
      CB_OPEN_MS: '1200',
      CB_HALF_OPEN_SUCCESSES: '2',
      REDIS_KEY_PREFIX: prefix,
      JWT_SECRET,
      UPSTREAM_RETRY_BACKOFF_MS: '0',
    };
    a = await startGateway({ env });
    b = await startGateway({ env, databaseUrl: a.databaseUrl });
    const { key } = await newConsumer(a, { credits: 100_000 });
    const { token } = await adminToken(a);
    clientA = new Client(a, key, token);
    clientB = new Client(b, key, token);
  });

  afterAll(async () => {
    await b?.gateway.shutdown();
    await a?.close();
    await flaky?.stop();
    await backup?.stop();
  });

  beforeEach(async () => {
    flaky.reset();
    backup.reset();
    await clientA.admin('POST', '/admin/circuit-breakers/flaky/reset');
  });

  it('lists every provider breaker from the start, before any traffic', async () => {
    const breakers = await clientB.breakers();
    expect(breakers.map((x) => x.name).sort()).toEqual(['backup', 'flaky']);
    expect(breakers.find((x) => x.name === 'backup')).toEqual({
      name: 'backup',
      state: 'closed',
      failures: 0,
      successRate: null,
      p95LatencyMs: null,
      openedAt: null,
      nextAttemptAt: null,
      forced: false,
      samples: 0,
    });
    const text = await (await fetch(`${a.url}/metrics`)).text();
    expect(text).toMatch(/gateway_circuit_breaker_state\{breaker="backup"\} 0/);
  });

  it('opens after exactly CB_FAILURE_THRESHOLD failures counted across replicas, then recovers through half-open', async () => {
    flaky.always({ mode: 'status', status: 500 });
    expect(await clientA.chat('cb-only')).toMatchObject({ status: 502, code: 'upstream_error' });
    expect(await clientB.breaker('flaky')).toMatchObject({ state: 'closed', failures: 1 });
    expect(await clientB.chat('cb-only')).toMatchObject({ status: 502 });
    expect(await clientA.breaker('flaky')).toMatchObject({ state: 'closed', failures: 2 });
    expect(await clientA.chat('cb-only')).toMatchObject({ status: 502 });

    const open = await clientB.breaker('flaky');
    expect(open).toMatchObject({ state: 'open', failures: 3, successRate: 0, forced: false });
    expect(Date.parse(open.nextAttemptAt!) - Date.parse(open.openedAt!)).toBe(1200);
    expect(flaky.count).toBe(3);

    // Open: fail fast on both replicas without touching the upstream, or fall back.
    const fast = await clientB.chat('cb-only');
    expect(fast).toMatchObject({ status: 503, code: 'circuit_open' });
    expect(Number(fast.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(await clientA.chat('cb-gpt')).toMatchObject({ status: 200, provider: 'backup' });
    expect(flaky.count).toBe(3);

    const metrics = await (await fetch(`${a.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_circuit_breaker_state\{breaker="flaky"\} 1/);
    expect(metrics).toMatch(
      /gateway_circuit_breaker_transitions_total\{breaker="flaky",from="closed",to="open"\} [1-9]/,
    );
    const health = await (await fetch(`${b.url}/health/detailed`)).json();
    expect(health.components).toContainEqual(
      expect.objectContaining({ name: 'circuit_breaker:flaky', status: 'down' }),
    );
    expect(health.status).toBe('degraded');

    // After CB_OPEN_MS the breaker reads half_open with no request needed.
    await waitFor(async () => (await clientB.breaker('flaky')).state === 'half_open');
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(open.nextAttemptAt!));
    expect(flaky.count).toBe(3);

    // Half-open: CB_HALF_OPEN_SUCCESSES successes close it.
    flaky.always({ mode: 'ok' });
    expect(await clientA.chat('cb-only')).toMatchObject({ status: 200, provider: 'flaky' });
    expect(await clientB.breaker('flaky')).toMatchObject({ state: 'half_open' });
    expect(await clientB.chat('cb-only')).toMatchObject({ status: 200 });
    expect(await clientA.breaker('flaky')).toMatchObject({
      state: 'closed',
      failures: 0,
      openedAt: null,
      nextAttemptAt: null,
    });
    expect(await clientA.chat('cb-gpt')).toMatchObject({ status: 200, provider: 'flaky' });
  });

  it('reopens on the first failure in half-open', async () => {
    flaky.always({ mode: 'status', status: 503 });
    for (let i = 0; i < 3; i++) await clientA.chat('cb-only');
    const first = await clientA.breaker('flaky');
    expect(first.state).toBe('open');
    await waitFor(async () => (await clientA.breaker('flaky')).state === 'half_open');
    expect(await clientB.chat('cb-only')).toMatchObject({ status: 502 });
    const again = await clientA.breaker('flaky');
    expect(again.state).toBe('open');
    expect(Date.parse(again.openedAt!)).toBeGreaterThan(Date.parse(first.openedAt!));
    expect(await clientA.chat('cb-only')).toMatchObject({ status: 503, code: 'circuit_open' });
    expect(flaky.count).toBe(4);
  });

  it("does not count the client's own 4xx, 429s or timeouts of other providers as failures", async () => {
    flaky.always({ mode: 'status', status: 400 });
    for (let i = 0; i < 4; i++) expect((await clientA.chat('cb-only')).status).toBe(400);
    flaky.always({ mode: 'status', status: 429 });
    for (let i = 0; i < 4; i++) expect((await clientA.chat('cb-only')).status).toBe(503);
    expect(await clientA.breaker('flaky')).toMatchObject({ state: 'closed', failures: 0 });
  });

  it('force-opens for durationMs and resets, from either replica, with audit rows', async () => {
    const forced = await clientA.admin('POST', '/admin/circuit-breakers/flaky/force-open', {
      durationMs: 60_000,
    });
    expect(forced.status).toBe(200);
    expect(forced.body).toMatchObject({ name: 'flaky', state: 'open', forced: true });
    const until = Date.parse(forced.body.nextAttemptAt) - Date.now();
    expect(until).toBeGreaterThan(55_000);
    expect(until).toBeLessThanOrEqual(60_000);
    expect(await clientB.chat('cb-only')).toMatchObject({ status: 503, code: 'circuit_open' });
    expect(await clientB.chat('cb-gpt')).toMatchObject({ status: 200, provider: 'backup' });
    expect(flaky.count).toBe(0);

    const reset = await clientB.admin('POST', '/admin/circuit-breakers/flaky/reset');
    expect(reset.status).toBe(200);
    expect(reset.body).toMatchObject({ state: 'closed', forced: false });
    expect(await clientA.chat('cb-only')).toMatchObject({ status: 200, provider: 'flaky' });

    const audit = await clientA.admin('GET', '/admin/audit?limit=50');
    const actions = audit.body.data.map((row: { action: string }) => row.action);
    expect(actions).toEqual(
      expect.arrayContaining(['circuit_breaker.force_open', 'circuit_breaker.reset']),
    );
  });

  it('closes the breaker of a provider an admin disables: it gets no traffic that could close it', async () => {
    await clientA.admin('POST', '/admin/circuit-breakers/flaky/force-open', { durationMs: 60_000 });
    const providers = await clientA.admin('GET', '/admin/providers');
    const flakyId = providers.body.data.find((p: { name: string }) => p.name === 'flaky').id;
    try {
      const disabled = await clientB.admin('PATCH', `/admin/providers/${flakyId}`, {
        enabled: false,
      });
      expect(disabled.status).toBe(200);
      expect(await clientA.breaker('flaky')).toMatchObject({ state: 'closed', forced: false });
      await waitFor(async () =>
        /gateway_circuit_breaker_state\{breaker="flaky"\} 0/.test(
          await (await fetch(`${a.url}/metrics`)).text(),
        ),
      );
      const audit = await clientA.admin('GET', '/admin/audit?limit=20');
      expect(audit.body.data).toContainEqual(
        expect.objectContaining({ action: 'circuit_breaker.reset', target: 'flaky' }),
      );
    } finally {
      await clientA.admin('PATCH', `/admin/providers/${flakyId}`, { enabled: true });
    }
  });

  it('validates force-open and reset requests', async () => {
    const bad = [{ durationMs: 0 }, { durationMs: 'soon' }, { durationMs: 1.5 }, { extra: 1 }];
    for (const body of bad) {
      const res = await clientA.admin('POST', '/admin/circuit-breakers/flaky/force-open', body);
      expect(res.status).toBe(400);
      expect(res.body.error.type).toBe('invalid_request_error');
    }
    expect((await clientA.admin('POST', '/admin/circuit-breakers/nope/reset')).status).toBe(404);
    expect(
      (await clientA.admin('POST', '/admin/circuit-breakers/nope/force-open', { durationMs: 10 }))
        .status,
    ).toBe(404);
    const anonymous = await fetch(`${a.url}/admin/circuit-breakers`);
    expect(anonymous.status).toBe(401);
    const withApiKey = await fetch(`${a.url}/admin/circuit-breakers`, {
      headers: { authorization: `Bearer ${clientA.sdk.apiKey}` },
    });
    expect(withApiKey.status).toBe(401);
  });

  it('is reset from the CLI: npm run cli -- breaker:reset <name>', async () => {
    await clientA.admin('POST', '/admin/circuit-breakers/flaky/force-open', { durationMs: 60_000 });
    const cliEnv = {
      ...env,
      NODE_ENV: 'test',
      DATABASE_URL: a.databaseUrl,
      REDIS_URL: testEnv.redisUrl!,
      LOG_LEVEL: 'silent',
    };
    const run = async (args: string[]) => {
      const out: string[] = [];
      const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: unknown) => {
        out.push(String(chunk));
        return true;
      });
      const errSpy = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
      try {
        return { code: await runCli(args, cliEnv as NodeJS.ProcessEnv), out: out.join('') };
      } finally {
        spy.mockRestore();
        errSpy.mockRestore();
      }
    };
    const list = await run(['breaker:reset', '--list']);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/flaky\s+open/);
    const reset = await run(['breaker:reset', 'flaky']);
    expect(reset).toEqual({ code: 0, out: 'circuit breaker flaky: open -> closed\n' });
    expect(await clientB.breaker('flaky')).toMatchObject({ state: 'closed' });
    expect((await run(['breaker:reset', 'nope'])).code).toBe(1);
    expect((await run(['breaker:reset'])).code).toBe(2);
  });
});

describe('circuit breakers: production guard, memory mode, Redis outage', () => {
  let upstream: MockUpstream;
  let file: string;

  beforeAll(async () => {
    upstream = await startMockUpstream('solo');
    file = writeProvidersFile(`
providers:
  - { name: solo, kind: openai, base_url: "${upstream.url}", models: [solo-gpt], timeout_ms: 2000 }
`);
  });
  afterAll(() => upstream.stop());
  beforeEach(() => upstream.reset());

  const productionEnv = () => ({
    NODE_ENV: 'production',
    PROVIDERS_FILE: file,
    JWT_SECRET,
    SESSION_ENCRYPTION_KEY: randomBytes(32).toString('hex'),
  });

  it('refuses force-open in production unless ALLOW_FORCE_OPEN=true, which is logged at boot', async () => {
    const locked = await startGateway({ env: productionEnv() });
    try {
      const { token } = await adminToken(locked);
      const client = new Client(locked, 'unused', token);
      const res = await client.admin('POST', '/admin/circuit-breakers/solo/force-open', {
        durationMs: 1000,
      });
      expect(res.status).toBe(403);
      expect(res.body.error.type).toBe('permission_error');
      expect((await client.admin('POST', '/admin/circuit-breakers/solo/reset')).status).toBe(200);
      expect(locked.logText()).not.toContain('ALLOW_FORCE_OPEN=true');
    } finally {
      await locked.close();
    }
    const allowed = await startGateway({ env: { ...productionEnv(), ALLOW_FORCE_OPEN: 'true' } });
    try {
      expect(
        allowed.logs.some(
          (l) => l.includes('"level":"warn"') && l.includes('ALLOW_FORCE_OPEN=true'),
        ),
      ).toBe(true);
      const { token } = await adminToken(allowed);
      const client = new Client(allowed, 'unused', token);
      const res = await client.admin('POST', '/admin/circuit-breakers/solo/force-open', {
        durationMs: 1000,
      });
      expect(res.status).toBe(200);
      expect(res.body.state).toBe('open');
    } finally {
      await allowed.close();
    }
  });

  it('works per process without Redis', async () => {
    const gw = await startGateway({
      redis: false,
      env: { PROVIDERS_FILE: file, CB_FAILURE_THRESHOLD: '2', CB_OPEN_MS: '60000' },
    });
    try {
      const { key } = await newConsumer(gw);
      const { token } = await adminToken(gw);
      const client = new Client(gw, key, token);
      upstream.always({ mode: 'status', status: 500 });
      expect((await client.chat('solo-gpt')).status).toBe(502);
      expect((await client.chat('solo-gpt')).status).toBe(502);
      expect(await client.chat('solo-gpt')).toMatchObject({ status: 503, code: 'circuit_open' });
      expect(upstream.count).toBe(2);
      expect(await client.breaker('solo')).toMatchObject({ state: 'open', failures: 2 });
    } finally {
      await gw.close();
    }
  });

  it('keeps breaking in process memory while Redis is down', async () => {
    const redis = await startRedisServer();
    const gw = await startGateway({
      redis: redis.url,
      env: { PROVIDERS_FILE: file, CB_FAILURE_THRESHOLD: '2', CB_OPEN_MS: '60000' },
    });
    try {
      const { key } = await newConsumer(gw);
      const { token } = await adminToken(gw);
      const client = new Client(gw, key, token);
      await redis.stop();
      await waitFor(async () => gw.logs.some((l) => l.includes('FALLBACK ACTIVATED')));
      upstream.always({ mode: 'status', status: 500 });
      expect((await client.chat('solo-gpt')).status).toBe(502);
      expect((await client.chat('solo-gpt')).status).toBe(502);
      expect(await client.chat('solo-gpt')).toMatchObject({ status: 503, code: 'circuit_open' });
      expect(upstream.count).toBe(2);
    } finally {
      await gw.close();
      await redis.stop();
    }
  });

  it('starts the next Redis outage from closed, not from the state the last one left', async () => {
    const redis = await startRedisServer();
    const gw = await startGateway({
      redis: redis.url,
      env: { PROVIDERS_FILE: file, CB_FAILURE_THRESHOLD: '2', CB_OPEN_MS: '60000' },
    });
    const fallbackLines = (text: string) => gw.logs.filter((l) => l.includes(text)).length;
    try {
      const { key } = await newConsumer(gw);
      const { token } = await adminToken(gw);
      const client = new Client(gw, key, token);
      // Outage 1: the provider fails and the in-process breaker opens.
      await redis.stop();
      await waitFor(async () => fallbackLines('FALLBACK ACTIVATED') === 1);
      upstream.always({ mode: 'status', status: 500 });
      expect((await client.chat('solo-gpt')).status).toBe(502);
      expect((await client.chat('solo-gpt')).status).toBe(502);
      expect(await client.chat('solo-gpt')).toMatchObject({ status: 503, code: 'circuit_open' });
      // Redis returns (its breaker closed) and so does the provider.
      upstream.always({ mode: 'ok' });
      await redis.restart();
      await waitFor(async () => fallbackLines('FALLBACK DEACTIVATED') === 1);
      expect((await client.chat('solo-gpt')).status).toBe(200);
      // Redis flaps: the healthy provider is served, not refused by outage 1's open breaker.
      await redis.stop();
      await waitFor(async () => fallbackLines('FALLBACK ACTIVATED') === 2);
      expect((await client.chat('solo-gpt')).status).toBe(200);
      expect(await client.breaker('solo')).toMatchObject({ state: 'closed', failures: 0 });
    } finally {
      await gw.close();
      await redis.stop();
    }
  });
});
