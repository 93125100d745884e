import { Controller, Get, Module, UseGuards } from '@nestjs/common';
import type { DynamicModule } from '@nestjs/common';
import type { ApplicationConfig } from '@nestjs/core';
import Redis from 'ioredis';
import { ApiKeyGuard, RequireScopes } from '@app/auth';
import { CreditsService } from '@app/credits';
import { SkipRateLimit } from '@app/rate-limit';
import { AppModule } from '../apps/gateway/src/app.module';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { installAuthProbe, metricValue } from './support/auth-probe';
import { startGateway, TestGateway, uniqueRedisPrefix } from './support/gateway';
import { startMockUpstream, oneProviderFile } from './support/mock-upstream';
import { startRedisServer } from './support/redis-server';
import { testEnv } from './support/test-env';

// /probe/chat is a public route behind ApiKeyGuard only; the rate-limit hook ApiKeyGuard runs
// (RateLimitAdmission) limits it like every other API-key route.
installAuthProbe();

/** An API-key route left out of the limits, e.g. a cheap status poll. */
@Controller('probe-skip')
@UseGuards(ApiKeyGuard)
class SkipProbeController {
  @Get('status')
  @RequireScopes('chat')
  @SkipRateLimit()
  status() {
    return { ok: true };
  }
}

@Module({})
class SkipProbeRootModule {}

{
  const forRoot = jest.spyOn(AppModule, 'forRoot');
  const withAuthProbe = forRoot.getMockImplementation()!;
  forRoot.mockImplementation((...args: Parameters<typeof AppModule.forRoot>): DynamicModule => ({
    module: SkipProbeRootModule,
    imports: [withAuthProbe(...args)],
    controllers: [SkipProbeController],
  }));
}

async function waitFor(predicate: () => Promise<boolean> | boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met in time');
}

function call(gw: TestGateway, consumer: TestConsumer): Promise<Response> {
  return fetch(`${gw.url}/probe/chat`, { headers: { authorization: `Bearer ${consumer.key}` } });
}

function limitHeaders(res: Response) {
  return {
    limit: res.headers.get('x-ratelimit-limit-requests'),
    remaining: res.headers.get('x-ratelimit-remaining-requests'),
    reset: res.headers.get('x-ratelimit-reset-requests'),
  };
}

async function component(gw: TestGateway, name: string) {
  const body = await (await fetch(`${gw.url}/health/detailed`)).json();
  return body.components.find((c: { name: string }) => c.name === name);
}

describe('rate limits per API key (Redis, two replicas)', () => {
  const prefix = uniqueRedisPrefix();
  let gw1: TestGateway;
  let gw2: TestGateway;
  let redis: Redis;

  beforeAll(async () => {
    if (!testEnv.redisUrl) throw new Error('Redis is required for this suite');
    gw1 = await startGateway({ env: { REDIS_KEY_PREFIX: prefix, RATE_LIMIT_PER_MINUTE: '7' } });
    gw2 = await startGateway({
      databaseUrl: gw1.databaseUrl,
      env: { REDIS_KEY_PREFIX: prefix, RATE_LIMIT_PER_MINUTE: '7' },
    });
    redis = new Redis(testEnv.redisUrl, { keyPrefix: prefix });
  });
  afterAll(async () => {
    redis.disconnect();
    await gw2.close();
    await gw1.close();
  });

  it('counts the headers down, then answers 429 with Retry-After and nothing else changes', async () => {
    const consumer = await newConsumer(gw1, { rateLimitPerMinute: 3 });
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const res = await call(gw1, consumer);
      expect(res.status).toBe(200);
      seen.push(limitHeaders(res));
    }
    expect(seen.map((h) => h.remaining)).toEqual(['2', '1', '0']);
    for (const h of seen) {
      expect(h.limit).toBe('3');
      expect(h.reset).toMatch(/^\d+s$/);
      expect(Number(h.reset!.slice(0, -1))).toBeLessThanOrEqual(60);
    }
    const before = await metricValue(
      gw1.url,
      'gateway_rate_limit_rejections_total',
      'scope="key_minute"',
    );
    const refused = await call(gw1, consumer);
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
    expect(limitHeaders(refused)).toMatchObject({ limit: '3', remaining: '0' });
    const body = await refused.json();
    expect(body.error).toMatchObject({
      type: 'rate_limit_error',
      code: 'rate_limit_exceeded',
      param: null,
    });
    expect(
      await metricValue(gw1.url, 'gateway_rate_limit_rejections_total', 'scope="key_minute"'),
    ).toBe(before + 1);
  });

  it('holds the limit across two replicas sharing Redis', async () => {
    const consumer = await newConsumer(gw1, { rateLimitPerMinute: 4 });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await call(i % 2 ? gw2 : gw1, consumer)).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429, 429]);
  });

  it('counts concurrent requests exactly once each', async () => {
    const consumer = await newConsumer(gw1, { rateLimitPerMinute: 10 });
    const statuses = await Promise.all(
      Array.from({ length: 16 }, (_, i) => call(i % 2 ? gw2 : gw1, consumer).then((r) => r.status)),
    );
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.filter((s) => s === 429)).toHaveLength(6);
  });

  it('uses RATE_LIMIT_PER_MINUTE for a key without its own limit', async () => {
    const consumer = await newConsumer(gw1);
    const res = await call(gw2, consumer);
    expect(limitHeaders(res)).toMatchObject({ limit: '7', remaining: '6' });
  });

  it('refuses on the hour window with a Retry-After in the hour', async () => {
    const consumer = await newConsumer(gw1, { rateLimitPerMinute: 50, rateLimitPerHour: 2 });
    expect((await call(gw1, consumer)).status).toBe(200);
    const last = await call(gw2, consumer);
    expect(limitHeaders(last)).toMatchObject({ limit: '50', remaining: '0' });
    expect(last.headers.get('x-ratelimit-remaining-requests-hour')).toBe('0');
    const refused = await call(gw1, consumer);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(60);
    expect((await refused.json()).error.message).toMatch(/per hour/);
  });

  it('opens a fresh window once the old one expires', async () => {
    const consumer = await newConsumer(gw1, { rateLimitPerMinute: 2 });
    await call(gw1, consumer);
    await call(gw1, consumer);
    expect((await call(gw1, consumer)).status).toBe(429);
    // Fast-forward the minute window: the counter's TTL is the window.
    expect(await redis.pexpire(`rl:{${consumer.keyId}}:m`, 200)).toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    const res = await call(gw2, consumer);
    expect(res.status).toBe(200);
    expect(limitHeaders(res)).toMatchObject({ remaining: '1' });
    expect(Number(res.headers.get('x-ratelimit-reset-requests')!.slice(0, -1))).toBeGreaterThan(55);
  });

  it("applies an admin's limit change on every replica within seconds", async () => {
    const consumer = await newConsumer(gw1, { rateLimitPerMinute: 2 });
    await call(gw2, consumer);
    await call(gw2, consumer);
    expect((await call(gw2, consumer)).status).toBe(429);
    const { token } = await adminToken(gw1);
    const patch = await fetch(`${gw1.url}/admin/keys/${consumer.keyId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ rate_limit_per_minute: 5 }),
    });
    expect(patch.status).toBe(200);
    let res: Response | undefined;
    await waitFor(async () => {
      res = await call(gw2, consumer);
      return res.status === 200;
    }, 3000);
    expect(limitHeaders(res!)).toMatchObject({ limit: '5', remaining: '2' });
    // Lowering applies the same way: the running window is already over the new limit.
    await fetch(`${gw1.url}/admin/keys/${consumer.keyId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ rate_limit_per_minute: 1 }),
    });
    await waitFor(async () => (await call(gw2, consumer)).status === 429, 3000);
  });

  it('leaves a @SkipRateLimit route out: not refused, not counted, no headers', async () => {
    const consumer = await newConsumer(gw1, { rateLimitPerMinute: 2 });
    const status = () =>
      fetch(`${gw1.url}/probe-skip/status`, {
        headers: { authorization: `Bearer ${consumer.key}` },
      });
    for (let i = 0; i < 4; i++) {
      const res = await status();
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit-requests')).toBeNull();
    }
    // The skipped calls used none of the two slots.
    expect(limitHeaders(await call(gw1, consumer))).toMatchObject({ remaining: '1' });
    expect((await call(gw2, consumer)).status).toBe(200);
    expect((await call(gw1, consumer)).status).toBe(429);
    // Still authenticated: a skip is not a way around the API key.
    expect(
      (await fetch(`${gw1.url}/probe-skip/status`, { headers: { authorization: 'Bearer nope' } }))
        .status,
    ).toBe(401);
  });

  it('registers no global interceptor, so Nest calls handlers without the rxjs chain', () => {
    const config = (gw1.gateway.app as unknown as { config: ApplicationConfig }).config;
    expect(config.getGlobalInterceptors()).toEqual([]);
    expect(config.getGlobalRequestInterceptors()).toEqual([]);
  });

  it('reports the rate limiter on /health/detailed', async () => {
    expect(await component(gw1, 'rate_limiter')).toMatchObject({
      status: 'up',
      details: { backend: 'redis', policy: 'local', global_across_replicas: true },
    });
  });
});

describe('rate limits when Redis dies', () => {
  it('falls back to per-process counters visibly, without failing a request, and back', async () => {
    const server = await startRedisServer();
    const gw = await startGateway({ redis: server.url });
    try {
      const consumer = await newConsumer(gw, { rateLimitPerMinute: 3 });
      expect((await call(gw, consumer)).status).toBe(200);
      expect((await call(gw, consumer)).status).toBe(200);

      await server.stop();
      const statuses: number[] = [];
      for (let i = 0; i < 5; i++) statuses.push((await call(gw, consumer)).status);
      // Counting starts afresh in this process, and the limit still holds there.
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
      await waitFor(() => gw.logs.some((l) => l.includes('FALLBACK ACTIVATED')));
      expect(gw.logText()).toContain('limits now counted per process');
      expect(await component(gw, 'rate_limiter')).toMatchObject({
        status: 'degraded',
        details: { backend: 'local', redis_mode: 'memory-fallback' },
      });
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      expect(text).toMatch(/^gateway_redis_fallback_active 1$/m);

      await server.restart();
      await waitFor(() => gw.logs.some((l) => l.includes('rate limits counted on Redis again')));
      expect((await component(gw, 'rate_limiter')).details.backend).toBe('redis');
      // Back on Redis (this test's server keeps nothing across a restart: a fresh window).
      const back = await call(gw, consumer);
      expect(back.status).toBe(200);
      expect(limitHeaders(back)).toMatchObject({ limit: '3', remaining: '2' });
    } finally {
      await gw.close();
      await server.stop();
    }
  });

  it('answers 503 under RATE_LIMIT_ON_REDIS_FAILURE=deny, and says so', async () => {
    const server = await startRedisServer();
    const gw = await startGateway({
      redis: server.url,
      env: { RATE_LIMIT_ON_REDIS_FAILURE: 'deny' },
    });
    try {
      const consumer = await newConsumer(gw);
      expect((await call(gw, consumer)).status).toBe(200);
      await server.stop();
      const res = await call(gw, consumer);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect((await res.json()).error.code).toBe('rate_limiter_unavailable');
      await waitFor(() => gw.logText().includes('RATE_LIMIT_ON_REDIS_FAILURE=deny'));
      expect(await component(gw, 'rate_limiter')).toMatchObject({
        status: 'down',
        details: { backend: 'deny' },
      });
      expect(
        await metricValue(
          gw.url,
          'gateway_rate_limit_rejections_total',
          'scope="redis_unavailable"',
        ),
      ).toBeGreaterThanOrEqual(1);
      await server.restart();
      await waitFor(async () => (await call(gw, consumer)).status === 200);
    } finally {
      await gw.close();
      await server.stop();
    }
  });
});

describe('login limiter on /auth/token (per IP, @nestjs/throttler on Redis)', () => {
  it('caps attempts per client IP across replicas with 429 and Retry-After', async () => {
    const prefix = uniqueRedisPrefix();
    // Clients are told apart by X-Forwarded-For, as behind a trusted ingress.
    const env = { REDIS_KEY_PREFIX: prefix, LOGIN_RATE_LIMIT_PER_MINUTE: '3', TRUST_PROXY: 'true' };
    const gw1 = await startGateway({ env });
    const gw2 = await startGateway({ databaseUrl: gw1.databaseUrl, env });
    const login = (gw: TestGateway, ip: string, username: string) =>
      fetch(`${gw.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': ip },
        body: JSON.stringify({ username, password: 'wrong-password' }),
      });
    try {
      const before = await metricValue(
        gw1.url,
        'gateway_rate_limit_rejections_total',
        'scope="login_ip"',
      );
      const statuses = [];
      for (let i = 0; i < 3; i++)
        statuses.push((await login(i % 2 ? gw2 : gw1, '198.51.100.7', `nobody${i}`)).status);
      expect(statuses).toEqual([401, 401, 401]);
      const refused = await login(gw2, '198.51.100.7', 'nobody9');
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect((await refused.json()).error.code).toBe('rate_limit_exceeded');
      expect((await login(gw1, '198.51.100.8', 'nobody0')).status).toBe(401);
      // Both gateways run in this test process and share its metrics registry.
      expect(
        await metricValue(gw1.url, 'gateway_rate_limit_rejections_total', 'scope="login_ip"'),
      ).toBe(before + 1);
    } finally {
      await gw2.close();
      await gw1.close();
    }
  });
});

describe('rate limits on the chat API', () => {
  it('refuses with 429 before anything is charged or sent upstream; streams carry the headers', async () => {
    const upstream = await startMockUpstream('primary');
    const file = oneProviderFile(
      upstream.url,
      ['gpt-rl-test'],
      ['{ model: gpt-rl-test, per_request: 4 }'],
    );
    const gw = await startGateway({ env: { PROVIDERS_FILE: file } });
    try {
      const consumer = await newConsumer(gw, { credits: 100, rateLimitPerMinute: 2 });
      const send = (stream: boolean) =>
        fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'gpt-rl-test',
            messages: [{ role: 'user', content: 'hi' }],
            stream,
          }),
        });
      const json = await send(false);
      expect(json.status).toBe(200);
      expect(limitHeaders(json)).toMatchObject({ limit: '2', remaining: '1' });
      const stream = await send(true);
      expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(limitHeaders(stream)).toMatchObject({ limit: '2', remaining: '0' });
      await stream.text();
      // Read through the service: GET /v1/credits is an API-key route and counts too.
      const balanceOf = async () =>
        (await gw.gateway.app.get(CreditsService).balance(consumer.userId)).balance;
      const before = await balanceOf();
      const calls = upstream.count;
      const refused = await send(false);
      expect(refused.status).toBe(429);
      expect((await refused.json()).error.code).toBe('rate_limit_exceeded');
      expect(upstream.count).toBe(calls);
      expect(await balanceOf()).toBe(before);
      expect(before).toBe(100 - 2 * 4);
    } finally {
      await gw.close();
      await upstream.stop();
    }
  });
});
