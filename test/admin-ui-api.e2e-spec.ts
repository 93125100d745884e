import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { writeProvidersFile } from './support/mock-upstream';
import { ensureUiBuilt } from './admin-ui.helpers';
import { AdminStatsService } from '../apps/gateway/src/admin-console/admin-stats.service';

/* Serving of the built admin console and GET /admin/stats, over HTTP (no browser). */

async function waitFor<T>(
  read: () => Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  while (!ok(last) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    last = await read();
  }
  return last;
}

describe('admin console: static files', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    ensureUiBuilt();
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('redirects /admin/ui to /admin/ui/', async () => {
    const res = await fetch(`${gw.url}/admin/ui`, { redirect: 'manual' });
    expect(res.status).toBe(301);
    expect(res.headers.get('location')).toBe('/admin/ui/');
  });

  it('serves index.html with a strict CSP, no caching without revalidation, and an ETag', async () => {
    const res = await fetch(`${gw.url}/admin/ui/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const directive of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
      "form-action 'none'",
    ])
      expect(csp).toContain(directive);
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    const etag = res.headers.get('etag');
    expect(etag).toMatch(/^".+"$/);
    const html = await res.text();
    expect(html).toContain('<div id="app">');
    // Every script and stylesheet is one of ours, under /admin/ui/ (no CDN, nothing inline).
    const urls = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(urls.length).toBeGreaterThanOrEqual(3);
    for (const url of urls) expect(url).toMatch(/^(\/admin\/ui\/|\.\/)/);
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(html).not.toMatch(/<style/);

    const again = await fetch(`${gw.url}/admin/ui/`, { headers: { 'if-none-match': etag! } });
    expect(again.status).toBe(304);
  });

  it('serves the hashed assets with their content types, gzip and a year of immutable caching', async () => {
    const html = await (await fetch(`${gw.url}/admin/ui/`)).text();
    const script = html.match(/src="(\/admin\/ui\/assets\/[^"]+\.js)"/)?.[1];
    const style = html.match(/href="(\/admin\/ui\/assets\/[^"]+\.css)"/)?.[1];
    expect(script).toBeDefined();
    expect(style).toBeDefined();

    const js = await fetch(`${gw.url}${script}`, { headers: { 'accept-encoding': 'gzip' } });
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(js.headers.get('content-encoding')).toBe('gzip');
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await js.text()).length).toBeGreaterThan(1000); // fetch decompresses

    const css = await fetch(`${gw.url}${style}`, { headers: { 'accept-encoding': 'identity' } });
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(css.headers.get('content-encoding')).toBeNull();

    const icon = await fetch(`${gw.url}/admin/ui/favicon.svg`);
    expect(icon.headers.get('content-type')).toBe('image/svg+xml');
  });

  it('answers 404 in the API envelope for files it does not have', async () => {
    for (const path of [
      '/admin/ui/nope.js',
      '/admin/ui/assets/',
      '/admin/ui/%2e%2e/package.json',
    ]) {
      const res = await fetch(`${gw.url}${path}`);
      expect(res.status).toBe(404);
      const body = await res.json();
      expect(body.error).toMatchObject({ type: 'not_found_error', code: 'not_found' });
    }
  });
});

describe('GET /admin/stats', () => {
  let gw: TestGateway;
  let token: string;
  let consumer: TestConsumer;
  const stats = async (query = '') => {
    const res = await fetch(`${gw.url}/admin/stats${query}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return { status: res.status, body: await res.json() };
  };
  const chat = (content: string, model = 'mock-gpt') =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, temperature: 0, messages: [{ role: 'user', content }] }),
    });

  beforeAll(async () => {
    const providers = writeProvidersFile(
      [
        'providers:',
        '  - { name: mock, kind: mock, priority: 1, models: [mock-gpt] }',
        '  - { name: broken, kind: mock, priority: 2, models: [broken-gpt], error_rate: 1, fail_status: 500 }',
        'pricing:',
        '  - { model: mock-gpt, per_request: 3 }',
        '',
      ].join('\n'),
    );
    gw = await startGateway({ env: { PROVIDERS_FILE: providers } });
    token = (await adminToken(gw)).token;
    consumer = await newConsumer(gw, { credits: 100_000 });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('needs an admin JWT (an API key is refused)', async () => {
    expect((await fetch(`${gw.url}/admin/stats`)).status).toBe(401);
    const withKey = await fetch(`${gw.url}/admin/stats`, {
      headers: { authorization: `Bearer ${consumer.key}` },
    });
    expect(withKey.status).toBe(401);
  });

  it('refuses a bad window with a 400 naming the parameter', async () => {
    for (const bad of ['5', 'abc', '100000', '1.5']) {
      const res = await stats(`?window_seconds=${bad}`);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'invalid_request', param: 'window_seconds' });
    }
  });

  it('reports public API traffic, errors, latency, cache hits, credits, breakers, sessions and queue', async () => {
    // One miss then four hits of the same deterministic request, then two upstream failures.
    for (let i = 0; i < 5; i++) expect((await chat('stats please')).status).toBe(200);
    for (const n of [1, 2])
      expect((await chat(`fail ${n}`, 'broken-gpt')).status).toBeGreaterThanOrEqual(500);

    // Request logs are written in batches (about every second).
    const { status, body } = await waitFor(
      () => stats(),
      (r) => r.body.traffic?.requests === 7,
    );
    expect(status).toBe(200);
    expect(body.window_seconds).toBe(300);
    expect(body.unavailable).toEqual([]);
    const t = body.traffic;
    expect(t).toMatchObject({ requests: 7, errors: 2, cached: 4, client_errors: 0 });
    expect(t.error_rate).toBeCloseTo(2 / 7, 3);
    expect(t.cache_hit_rate).toBeCloseTo(4 / 5, 3);
    expect(t.requests_per_minute).toBeCloseTo(7 / 5, 2);
    expect(t.p95_latency_ms).toEqual(expect.any(Number));
    expect(t.p50_latency_ms).toBeLessThanOrEqual(t.p95_latency_ms);
    // One charged miss (3 credits); cache hits cost CACHE_HIT_PRICE (0); failures are refunded.
    expect(t.credits_spent).toBe(3);
    // Requests attributed to a provider (failed attempts may carry none).
    expect(t.by_provider).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ provider: 'mock', requests: 5, errors: 0 }),
      ]),
    );
    // 30 one-minute points ending now; together they hold every request of the last minutes.
    expect(t.series.points).toHaveLength(30);
    expect(t.series.points.reduce((s: number, p: { requests: number }) => s + p.requests, 0)).toBe(
      7,
    );
    expect(Date.parse(t.series.points[29].at)).toBeLessThanOrEqual(Date.now());

    expect(body.breakers.data).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'mock' })]),
    );
    expect(body.breakers.closed + body.breakers.open + body.breakers.half_open).toBe(
      body.breakers.data.length,
    );
    expect(body.sessions.by_status).toEqual({
      healthy: 0,
      quarantined: 0,
      expired: 0,
      disabled: 0,
    });
    expect(body.queue).toEqual({ pending: 0, generating: 0, oldest_pending_seconds: 0, stuck: 0 });
    expect(body.cache).toMatchObject({ backend: 'redis', hits: expect.any(Number) });
    expect(body.redis.mode).toBe('redis');
  });

  it('leaves admin calls (the console polling this endpoint) out of the traffic', async () => {
    for (let i = 0; i < 3; i++) await stats('?window_seconds=600');
    await new Promise((r) => setTimeout(r, 2_500));
    const { body } = await stats('?window_seconds=900');
    expect(body.traffic.requests).toBe(7);
  });

  it('keeps no answer past its reuse period, however many windows were asked for', async () => {
    // Windows under 200 s are reused for 2 s.
    for (let window = 60; window < 100; window++)
      expect((await stats(`?window_seconds=${window}`)).status).toBe(200);
    const memo = (
      gw.gateway.app.get(AdminStatsService) as unknown as { memo: Map<number, unknown> }
    ).memo;
    expect(memo.size).toBeGreaterThanOrEqual(40);
    await new Promise((r) => setTimeout(r, 2_100));
    expect((await stats('?window_seconds=100')).status).toBe(200);
    // (Longer windows asked for by the tests above may still be within their reuse period.)
    expect([...memo.keys()].filter((window) => window <= 100)).toEqual([100]);
  });
});
