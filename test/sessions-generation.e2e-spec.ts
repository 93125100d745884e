import { SessionsService } from '@app/sessions';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { writeProvidersFile } from './support/mock-upstream';
import { SessionUpstream } from './support/session-upstream';

/**
 * The pool as the generation pipeline uses it, seen from the client: providers with
 * `session_auth` take one session per request from the pool and send it upstream.
 *
 *   pool-model   → "jar" (cookie sessions, priority 1), then "backup" (own api_key, priority 2)
 *   solo-model   → "jar" only
 *   bearer-model → "tokens" (bearer sessions)
 */
describe('sessions in the generation pipeline', () => {
  let upstream: SessionUpstream;
  let gw: TestGateway;
  let consumer: TestConsumer;
  let token: string;
  let sessions: SessionsService;

  const BACKUP_KEY = 'backup-provider-api-key-000';

  beforeAll(async () => {
    upstream = await new SessionUpstream().start();
    upstream.behaviour.set(BACKUP_KEY, 'ok');
    const file = writeProvidersFile(
      [
        'providers:',
        '  - name: jar',
        '    kind: openai',
        `    base_url: ${upstream.url}`,
        '    session_auth: cookie',
        '    priority: 1',
        '    models: [pool-model, solo-model]',
        '    timeout_ms: 3000',
        '  - name: backup',
        '    kind: openai',
        `    base_url: ${upstream.url}`,
        `    api_key: ${BACKUP_KEY}`,
        '    priority: 2',
        '    models: [pool-model]',
        '    timeout_ms: 3000',
        '  - name: tokens',
        '    kind: openai',
        `    base_url: ${upstream.url}`,
        '    session_auth: bearer',
        '    models: [bearer-model]',
        '    timeout_ms: 3000',
        '',
      ].join('\n'),
    );
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        SESSION_FAILURE_WINDOW: '10',
        SESSION_FAILURE_MIN_SAMPLE: '3',
        SESSION_FAILURE_RATE_THRESHOLD: '0.5',
        SESSION_COOLDOWN_SECONDS: '60',
        CB_FAILURE_THRESHOLD: '1000',
        UPSTREAM_RETRY_BACKOFF_MS: '0',
      },
    });
    consumer = await newConsumer(gw, { credits: 100000 });
    token = (await adminToken(gw)).token;
    sessions = gw.gateway.app.get(SessionsService);
  });
  afterAll(async () => {
    await gw.close();
    await upstream.stop();
  });

  beforeEach(async () => {
    // Every test starts with an empty pool and a clean upstream script.
    for (const s of await sessions.list()) await sessions.remove(s.id, 'test');
    upstream.behaviour.clear();
    upstream.behaviour.set(BACKUP_KEY, 'ok');
    upstream.seen.length = 0;
  });

  const addSession = async (provider: string, cookie_text: string) => {
    const res = await fetch(`${gw.url}/admin/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cookie_text, provider }),
    });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string };
  };

  const chat = async (model: string) => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await res.text();
    return {
      status: res.status,
      provider: res.headers.get('x-provider'),
      text,
      body: JSON.parse(text),
    };
  };

  const status = async (id: string) => (await sessions.get(id)).status;

  it('spreads requests across the sessions, sending each as a Cookie', async () => {
    const creds = ['sso=spread-a-0001', 'sso=spread-b-0002', 'sso=spread-c-0003'];
    for (const c of creds) {
      await addSession('jar', c);
      upstream.behaviour.set(c, 'ok');
    }
    for (let i = 0; i < 9; i++) {
      const res = await chat('solo-model');
      expect(res.status).toBe(200);
      expect(res.provider).toBe('jar');
    }
    for (const c of creds) expect(upstream.count(c, '/chat/completions')).toBe(3);
    expect(upstream.seen.every((s) => s.via === 'cookie')).toBe(true);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_session_rotations_total\{provider="jar"\} \d+/);
  });

  it('sends bearer sessions as Authorization: Bearer', async () => {
    await addSession('tokens', 'tok-bearer-session-0001');
    upstream.behaviour.set('tok-bearer-session-0001', 'ok');
    expect((await chat('bearer-model')).status).toBe(200);
    expect(upstream.seen).toEqual([
      { credential: 'tok-bearer-session-0001', via: 'bearer', path: '/v1/chat/completions' },
    ]);
  });

  it('quarantines a failing session and moves traffic to the others', async () => {
    const bad = await addSession('jar', 'sso=failing-session-0001');
    await addSession('jar', 'sso=working-session-0002');
    upstream.behaviour.set('sso=failing-session-0001', 'error');
    upstream.behaviour.set('sso=working-session-0002', 'ok');
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await chat('solo-model')).status);
    // Rotation alternates until the failing one has 3 failures in its window, then only the
    // working one is used.
    expect(await status(bad.id)).toBe('quarantined');
    expect(upstream.count('sso=failing-session-0001')).toBe(3);
    expect(statuses.filter((s) => s === 502)).toHaveLength(3);
    for (let i = 0; i < 3; i++) expect((await chat('solo-model')).status).toBe(200);
    expect(upstream.count('sso=failing-session-0001')).toBe(3);
  });

  it('expires a session on upstream 401, never passing 401 to the client', async () => {
    const s = await addSession('jar', 'sso=revoked-upstream-0001');
    upstream.behaviour.set('sso=revoked-upstream-0001', 'unauthorized');
    const res = await chat('solo-model');
    expect(res.status).toBe(502);
    expect(res.body.error.type).toBe('upstream_error');
    expect(await status(s.id)).toBe('expired');
    const after = await chat('solo-model');
    expect(after.status).toBe(503);
    expect(after.body.error.code).toBe('no_healthy_sessions');
  });

  it('expires a session on upstream 403 and falls back to the next provider', async () => {
    const s = await addSession('jar', 'sso=forbidden-upstream-0001');
    upstream.behaviour.set('sso=forbidden-upstream-0001', 'forbidden');
    const res = await chat('pool-model');
    expect(res.status).toBe(200);
    expect(res.provider).toBe('backup');
    expect(await status(s.id)).toBe('expired');
  });

  it('rests a session after upstream 429 and uses the others meanwhile', async () => {
    const limited = await addSession('jar', 'sso=rate-limited-0001');
    await addSession('jar', 'sso=not-limited-0002');
    upstream.behaviour.set('sso=rate-limited-0001', 'rate_limited');
    upstream.behaviour.set('sso=not-limited-0002', 'ok');
    for (let i = 0; i < 4; i++) await chat('solo-model');
    const view = await sessions.get(limited.id);
    expect(view.status).toBe('healthy');
    expect(view.cooldown_until).not.toBeNull();
    expect(upstream.count('sso=rate-limited-0001')).toBe(1);
    expect(upstream.count('sso=not-limited-0002')).toBeGreaterThanOrEqual(3);
  });

  it('brings a session back with PATCH …/activate', async () => {
    const s = await addSession('jar', 'sso=comes-back-0001');
    upstream.behaviour.set('sso=comes-back-0001', 'unauthorized');
    await chat('solo-model');
    expect(await status(s.id)).toBe('expired');
    upstream.behaviour.set('sso=comes-back-0001', 'ok');
    const res = await fetch(`${gw.url}/admin/sessions/${s.id}/activate`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect((await chat('solo-model')).status).toBe(200);
  });

  it('falls back to the next provider without healthy sessions, else 503 no_healthy_sessions', async () => {
    const fallback = await chat('pool-model');
    expect(fallback.status).toBe(200);
    expect(fallback.provider).toBe('backup');
    expect(upstream.seen.map((s) => s.credential)).toEqual([BACKUP_KEY]);
    const none = await chat('solo-model');
    expect(none.status).toBe(503);
    expect(none.body.error).toMatchObject({
      type: 'service_unavailable',
      code: 'no_healthy_sessions',
    });
    const detailed = (await (await fetch(`${gw.url}/health/detailed`)).json()) as {
      components: { name: string; status: string; details: Record<string, unknown> }[];
    };
    const pool = detailed.components.find((c) => c.name === 'session_pool');
    expect(pool?.status).toBe('degraded');
    expect(pool?.details.without_healthy_sessions).toEqual(
      expect.arrayContaining(['jar', 'tokens']),
    );
  });

  it('never shows or logs a credential', async () => {
    const list = await (
      await fetch(`${gw.url}/admin/sessions`, { headers: { authorization: `Bearer ${token}` } })
    ).text();
    const text = gw.logText() + list;
    for (const secret of [
      'spread-a-0001',
      'tok-bearer-session-0001',
      'failing-session-0001',
      'revoked-upstream-0001',
      'rate-limited-0001',
      BACKUP_KEY,
    ])
      expect(text).not.toContain(secret);
  });
});
