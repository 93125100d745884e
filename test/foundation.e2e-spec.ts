import { Writable } from 'node:stream';
import { Client } from 'pg';
import { ConfigValidationError, loadConfig, loadConfigOrExit } from '@app/config';
import { createLogger } from '@app/observability';
import { rawRequest } from './faults/harness';
import { newConsumer } from './support/auth-factory';
import { metricValue } from './support/auth-probe';
import { createTestDatabase, dropDatabase, startGateway, TestGateway } from './support/gateway';
import { startRedisServer } from './support/redis-server';
import { relayDatabase } from './support/tcp-proxy';
import { testEnv } from './support/test-env';

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

describe('foundation: health, errors, request ids', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw.close();
  });

  it('serves /health with status, timestamp, uptime and version', async () => {
    const res = await fetch(`${gw.url}/health`);
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ status: 'ok', version: expect.any(String) });
    expect(typeof body.uptime).toBe('number');
    expect(Number.isNaN(Date.parse(body.timestamp))).toBe(false);
  });

  it('answers liveness and readiness', async () => {
    expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
    const ready = await fetch(`${gw.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect((await ready.json()).status).toBe('ok');
  });

  it('reports database and redis components in /health/detailed', async () => {
    const res = await fetch(`${gw.url}/health/detailed`);
    const body = await res.json();
    expect(res.status).toBe(200);
    const names = body.components.map((c: { name: string }) => c.name);
    expect(names).toEqual(expect.arrayContaining(['database', 'redis']));
    for (const component of body.components) {
      expect(component).toEqual(
        expect.objectContaining({
          name: expect.any(String),
          status: expect.any(String),
          details: expect.any(Object),
        }),
      );
      expect(component).toHaveProperty('latency_ms');
    }
  });

  it('returns the OpenAI error envelope for an unknown route', async () => {
    const res = await fetch(`${gw.url}/v1/does-not-exist`);
    expect(res.status).toBe(404);
    const body = await res.json();
    expect(body.error).toEqual(
      expect.objectContaining({
        type: 'not_found_error',
        code: 'not_found',
        param: null,
        message: expect.any(String),
      }),
    );
  });

  it('rejects malformed JSON with 400 and oversized bodies with 413', async () => {
    const bad = await fetch(`${gw.url}/health`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":',
    });
    expect([400, 404]).toContain(bad.status);
    const bad2 = await fetch(`${gw.url}/v1/anything`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":',
    });
    const envelope = await bad2.json();
    expect(envelope.error).toHaveProperty('type');
    const big = await fetch(`${gw.url}/v1/anything`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pad: 'x'.repeat(11 * 1024 * 1024) }),
    });
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('payload_too_large');
  });

  it('echoes x-request-id, accepts x-correlation-id, and logs it on the request line', async () => {
    const res = await fetch(`${gw.url}/v1/nothing-here`, {
      headers: { 'x-request-id': 'req-abc-123' },
    });
    expect(res.headers.get('x-request-id')).toBe('req-abc-123');
    expect((await res.json()).error.request_id).toBe('req-abc-123');
    const res2 = await fetch(`${gw.url}/health`, { headers: { 'x-correlation-id': 'corr-789' } });
    expect(res2.headers.get('x-request-id')).toBe('corr-789');
    const generated = (await fetch(`${gw.url}/health`)).headers.get('x-request-id');
    expect(generated).toMatch(
      /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
    );
    await waitFor(() =>
      gw.logs.some(
        (l) => l.includes('"request_id":"req-abc-123"') && l.includes('request completed'),
      ),
    );
  });

  it('counts and logs a request the HTTP parser refuses, without what it sent', async () => {
    const labels = (status: number) => `method="UNKNOWN",route="unparsed",status="${status}"`;
    const before431 = await metricValue(gw.url, 'http_requests_total', labels(431));
    const before400 = await metricValue(gw.url, 'http_requests_total', labels(400));
    const secret = 'sk-sy-RefusedButSecret0123456789abcdefghij';
    const oversized = await rawRequest(gw.url, [
      `GET /v1/models HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${secret}\r\n` +
        `x-big: ${'a'.repeat(20_000)}\r\n\r\n`,
    ]);
    const malformed = await rawRequest(gw.url, [
      `GET /v1/models HTTP/1.1\r\nhost: x\r\nx-api-key: ${secret}\rbroken: yes\r\n\r\n`,
    ]);
    expect([oversized.status, malformed.status]).toEqual([431, 400]);
    expect(await metricValue(gw.url, 'http_requests_total', labels(431))).toBe(before431 + 1);
    expect(await metricValue(gw.url, 'http_requests_total', labels(400))).toBe(before400 + 1);
    await waitFor(
      () => gw.logs.filter((l) => l.includes('request refused by the HTTP parser')).length >= 2,
    );
    const lines = gw.logs.filter((l) => l.includes('request refused by the HTTP parser'));
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          status: 431,
          code: 'headers_too_large',
          parser_error: 'HPE_HEADER_OVERFLOW',
          remote_addr: expect.stringMatching(/127\.0\.0\.1/),
        }),
        expect.objectContaining({ status: 400, code: 'malformed_request' }),
      ]),
    );
    expect(gw.logs.some((l) => l.includes(secret))).toBe(false);
  });

  it('answers an Expect it cannot meet with 417 in the envelope, counted', async () => {
    const label = 'method="UNKNOWN",route="unparsed",status="417"';
    const before = await metricValue(gw.url, 'http_requests_total', label);
    const reply = await rawRequest(gw.url, [
      'POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nexpect: 200-ok\r\n' +
        'content-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}',
    ]);
    expect(reply.status).toBe(417);
    expect(reply.head).toMatch(/content-type: application\/json/i);
    expect(JSON.parse(reply.body).error).toMatchObject({
      code: 'expectation_failed',
      type: 'invalid_request_error',
    });
    expect(await metricValue(gw.url, 'http_requests_total', label)).toBe(before + 1);
    // 100-continue is still Node's to answer, and the request goes through.
    const continued = await rawRequest(gw.url, [
      'GET /health HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n',
    ]);
    expect(`${continued.head}\r\n\r\n${continued.body}`).toContain('HTTP/1.1 200 OK');
  });

  it('exports http metrics by route template and node defaults', async () => {
    await fetch(`${gw.url}/health`);
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(text).toMatch(/http_requests_total\{method="GET",route="\/health",status="200"\} \d+/);
    expect(text).toContain('http_request_duration_seconds_bucket');
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('gateway_db_query_duration_seconds');
    expect(text).toContain('gateway_redis_up');
  });
});

describe('foundation: log redaction', () => {
  it('never writes authorization headers, cookies, passwords or keys', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _e, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = createLogger({ level: 'info' }, sink);
    logger.info(
      { headers: { authorization: 'Bearer sk-sy-supersecretvalue123', cookie: 'sso=abcdef' } },
      'incoming',
    );
    logger.info(
      {
        password: 'hunter2hunter2',
        api_key: 'sk-live-abcdefghijkl',
        nested: { cookie_text: 'sso=zzz' },
      },
      'x',
    );
    logger.warn('upstream said: invalid key sk-proj-abcdefghijklmnop');
    const text = lines.join('');
    for (const secret of [
      'supersecretvalue123',
      'sso=abcdef',
      'hunter2hunter2',
      'sk-live-abcdefghijkl',
      'sso=zzz',
      'sk-proj-abcdefghijklmnop',
    ]) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain('[REDACTED]');
  });
});

describe('foundation: configuration validation', () => {
  it('names every bad variable and what it expects', () => {
    try {
      loadConfig({
        PORT: 'abc',
        DB_POOL_MAX_SIZE: '0',
        REDIS_URL: 'http://x',
        SESSION_ENCRYPTION_KEY: 'short',
        LOG_LEVEL: 'loud',
      });
      throw new Error('should have thrown');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigValidationError);
      const problems = (err as ConfigValidationError).problems.join('\n');
      for (const name of [
        'PORT',
        'DB_POOL_MAX_SIZE',
        'REDIS_URL',
        'SESSION_ENCRYPTION_KEY',
        'LOG_LEVEL',
      ])
        expect(problems).toContain(name);
      expect(problems).toMatch(/64 hex/);
    }
  });

  it('refuses production without secrets', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
      /JWT_SECRET: required in production/,
    );
    expect(() => loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'short' })).toThrow(
      /at least 32/,
    );
  });

  it('prints one line per bad variable and exits with code 1', () => {
    const lines: string[] = [];
    let code: number | undefined;
    const result = loadConfigOrExit(
      { PORT: '-1', CB_OPEN_MS: 'soon' },
      (l) => lines.push(l),
      (c) => {
        code = c;
      },
    );
    expect(result).toBeUndefined();
    expect(code).toBe(1);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^config error: PORT: /);
    expect(lines[1]).toMatch(/^config error: CB_OPEN_MS: /);
  });
});

describe('foundation: database outage', () => {
  it('readiness goes 503 while Postgres is unreachable and returns to 200 by itself', async () => {
    const dbUrl = await createTestDatabase();
    const { proxy, url: viaProxy } = await relayDatabase(dbUrl);
    const gw = await startGateway({
      databaseUrl: viaProxy,
      env: { DB_CONNECT_TIMEOUT_MS: '500' },
    });
    // The DatabaseDown alert fires on this gauge, so it must follow the probe both ways.
    const dbUp = async () =>
      /^gateway_db_up (\d)$/m.exec(await (await fetch(`${gw.url}/metrics`)).text())?.[1];
    try {
      expect((await fetch(`${gw.url}/health/ready`)).status).toBe(200);
      expect(await dbUp()).toBe('1');
      await proxy.cut();
      await waitFor(async () => (await fetch(`${gw.url}/health/ready`)).status === 503);
      expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
      const detailed = await fetch(`${gw.url}/health/detailed`);
      expect(detailed.status).toBe(503);
      await waitFor(async () => (await dbUp()) === '0');
      await proxy.restore();
      await waitFor(async () => (await fetch(`${gw.url}/health/ready`)).status === 200);
      await waitFor(async () => (await dbUp()) === '1');
    } finally {
      await gw.close();
      await proxy.cut();
      await dropDatabase(dbUrl);
    }
  });
});

describe('foundation: frozen database', () => {
  it('fails requests fast with 503 while Postgres answers nothing, and recovers by itself', async () => {
    const dbUrl = await createTestDatabase();
    const { proxy, url: viaProxy } = await relayDatabase(dbUrl);
    const gw = await startGateway({
      databaseUrl: viaProxy,
      env: { DB_CONNECT_TIMEOUT_MS: '500', DB_STATEMENT_TIMEOUT_MS: '1000' },
    });
    const chat = async (key: string) => {
      const started = Date.now();
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'mock-gpt', messages: [{ role: 'user', content: 'hi' }] }),
      });
      const body = (await res.json()) as { error?: { code: string } };
      return { status: res.status, code: body.error?.code, ms: Date.now() - started };
    };
    try {
      const { key } = await newConsumer(gw);
      expect((await chat(key)).status).toBe(200);
      // Connections stay open and nothing comes back: only the gateway's own timers end a wait.
      proxy.freeze();
      const during = await Promise.all(
        [0, 300, 600, 900].map(async (delay) => {
          await new Promise((resolve) => setTimeout(resolve, delay));
          return chat(key);
        }),
      );
      for (const reply of during) {
        expect(reply).toMatchObject({ status: 503, code: 'database_unavailable' });
        expect(reply.ms).toBeLessThan(5000);
      }
      await waitFor(async () => (await fetch(`${gw.url}/health/ready`)).status === 503);
      const flagged = await chat(key);
      expect(flagged).toMatchObject({ status: 503, code: 'database_unavailable' });
      expect(flagged.ms).toBeLessThan(1000);
      proxy.thaw();
      await waitFor(async () => (await fetch(`${gw.url}/health/ready`)).status === 200);
      // Ready means served: the ping that made readiness 200 also ended fail-fast.
      expect((await chat(key)).status).toBe(200);
    } finally {
      proxy.thaw();
      await gw.close();
      await proxy.cut();
      await dropDatabase(dbUrl);
    }
  });
});

describe('foundation: terminated pooled connections', () => {
  it('keeps readiness at 200 when the pool idle connections are killed under it', async () => {
    const gw = await startGateway();
    const database = new URL(gw.databaseUrl).pathname.slice(1);
    const admin = new Client({ connectionString: testEnv.adminDatabaseUrl });
    await admin.connect();
    try {
      const statuses: number[] = [];
      for (let round = 0; round < 10; round++) {
        // Several concurrent probes leave several idle connections in the pool.
        await Promise.all(
          Array.from({ length: 4 }, () => fetch(`${gw.url}/health/ready`).then((r) => r.text())),
        );
        // pg_terminate_backend only signals: the backends die while the probe below runs.
        const { rows } = await admin.query(
          `SELECT count(pg_terminate_backend(pid))::int AS terminated FROM pg_stat_activity
            WHERE datname = $1 AND state = 'idle' AND pid <> pg_backend_pid()`,
          [database],
        );
        expect(rows[0].terminated).toBeGreaterThan(0);
        statuses.push((await fetch(`${gw.url}/health/ready`)).status);
      }
      expect(statuses).toEqual(Array(10).fill(200));
    } finally {
      await admin.end();
      await gw.close();
    }
  });
});

describe('foundation: redis fallback', () => {
  it('switches to memory when Redis dies and back when it returns, saying so', async () => {
    const redis = await startRedisServer();
    const gw = await startGateway({ redis: redis.url });
    const metric = async () => {
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      return Number(/^gateway_redis_fallback_active (\d)/m.exec(text)?.[1]);
    };
    try {
      expect(await metric()).toBe(0);
      await redis.stop();
      await waitFor(() => gw.logs.some((l) => l.includes('FALLBACK ACTIVATED')));
      expect(await metric()).toBe(1);
      expect((await fetch(`${gw.url}/health/ready`)).status).toBe(200);
      const detailed = await (await fetch(`${gw.url}/health/detailed`)).json();
      expect(
        detailed.components.find((c: { name: string }) => c.name === 'redis').details.mode,
      ).toBe('memory-fallback');
      await redis.restart();
      await waitFor(() => gw.logs.some((l) => l.includes('FALLBACK DEACTIVATED')));
      expect(await metric()).toBe(0);
      expect(gw.logs.filter((l) => l.includes('FALLBACK ACTIVATED')).length).toBe(1);
    } finally {
      await gw.close();
      await redis.stop();
    }
  });

  it('switches back by itself after Redis stalls without dropping the connection', async () => {
    // A frozen Redis times commands out on a socket that stays open, so no reconnect (and no
    // 'ready') ever comes to end the fallback: only asking Redis again can.
    const redis = await startRedisServer();
    const gw = await startGateway({ redis: redis.url });
    const metric = async () => {
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      return Number(/^gateway_redis_fallback_active (\d)/m.exec(text)?.[1]);
    };
    try {
      const { key } = await newConsumer(gw);
      const models = () =>
        fetch(`${gw.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      expect((await models()).status).toBe(200);
      redis.pause();
      expect((await models()).status).toBe(200); // its rate-limit step times out, memory answers
      await waitFor(() => gw.logs.some((l) => l.includes('FALLBACK ACTIVATED')));
      expect(await metric()).toBe(1);
      redis.resume();
      await waitFor(() => gw.logs.some((l) => l.includes('FALLBACK DEACTIVATED')));
      expect(await metric()).toBe(0);
      expect((await models()).status).toBe(200);
    } finally {
      redis.resume();
      await gw.close();
      await redis.stop();
    }
  });

  it('makes readiness 503 without Redis when REDIS_REQUIRED=true', async () => {
    const redis = await startRedisServer();
    const gw = await startGateway({ redis: redis.url, env: { REDIS_REQUIRED: 'true' } });
    try {
      expect((await fetch(`${gw.url}/health/ready`)).status).toBe(200);
      await redis.stop();
      await waitFor(async () => (await fetch(`${gw.url}/health/ready`)).status === 503);
    } finally {
      await gw.close();
    }
  });
});
