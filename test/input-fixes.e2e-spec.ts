import { LifecycleService } from '@app/health';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { writeProvidersFile } from './support/mock-upstream';
import { call, isEnvelope, Reply } from './faults/harness';

/**
 * Three defects a fuzzing audit found: a wrong JSON type was reported as "is required", 404s
 * under /health skipped the error envelope, and POST /admin/sessions took any string Date.parse
 * could read as `expires_at`.
 */
describe('input fixes: type errors, /health 404s, session expires_at', () => {
  let gw: TestGateway;
  let consumer: TestConsumer;
  let admin: string;
  const chat = { model: 'mock-gpt', messages: [{ role: 'user', content: 'hi' }] };

  const asKey = (path: string, body: unknown) =>
    call(gw.url, path, { headers: { authorization: `Bearer ${consumer.key}` }, body });
  const asAdmin = (method: string, path: string, body?: unknown) =>
    call(gw.url, path, { method, headers: { authorization: `Bearer ${admin}` }, body });

  const expect400 = (res: Reply, message: string, param: string) => {
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: 'invalid_request_error', message, param });
  };

  beforeAll(async () => {
    const file = writeProvidersFile(`
providers:
  - { name: mock, kind: mock, models: [mock-gpt, mock-image] }
`);
    gw = await startGateway({ env: { PROVIDERS_FILE: file } });
    consumer = await newConsumer(gw, { credits: 1_000_000 });
    admin = (await adminToken(gw)).token;
  });
  afterAll(async () => {
    await gw?.close();
  });

  describe('a value of the wrong JSON type says what was expected, not "is required"', () => {
    it.each([
      [{ temperature: '0.7' }, 'temperature: expected a number', 'temperature'],
      [{ max_tokens: 1.5 }, 'max_tokens: expected an integer', 'max_tokens'],
      [{ n: '1' }, 'n: expected a number', 'n'],
      [{ messages: {} }, 'messages: expected an array', 'messages'],
      [{ user: null }, 'user: expected a string', 'user'],
      [{ model: null }, 'model: expected a string', 'model'],
      [{ stream: 'yes' }, 'stream: expected a boolean', 'stream'],
      [{ stop: 5 }, 'stop: expected a string or an array', 'stop'],
      [{ messages: [1] }, 'messages[0]: expected an object', 'messages[0]'],
      [
        { messages: [{ role: 'user', content: 5 }] },
        'messages[0].content: expected a string or an array',
        'messages[0].content',
      ],
      [
        { stream_options: { include_usage: 'yes' } },
        'stream_options.include_usage: expected a boolean',
        'stream_options.include_usage',
      ],
    ])('chat %j → %s', async (patch, message, param) => {
      expect400(await asKey('/v1/chat/completions', { ...chat, ...patch }), message, param);
    });

    it('an absent field is still "is required" (chat)', async () => {
      expect400(
        await asKey('/v1/chat/completions', { model: 'mock-gpt' }),
        'messages: is required',
        'messages',
      );
      expect400(
        await asKey('/v1/chat/completions', { messages: chat.messages }),
        'model: is required',
        'model',
      );
      expect400(
        await asKey('/v1/chat/completions', { ...chat, messages: [{ role: 'user' }] }),
        'messages[0].content: is required',
        'messages[0].content',
      );
      expect400(
        await asKey('/v1/chat/completions', {
          ...chat,
          messages: [{ role: 'tool', content: 'x' }],
        }),
        'messages[0].tool_call_id: is required',
        'messages[0].tool_call_id',
      );
    });

    it('images: wrong types and absent fields', async () => {
      const images = { model: 'mock-image', prompt: 'a lighthouse' };
      expect400(
        await asKey('/v1/images/generations', { ...images, n: '2' }),
        'n: expected a number',
        'n',
      );
      expect400(
        await asKey('/v1/images/generations', { ...images, prompt: 3 }),
        'prompt: expected a string',
        'prompt',
      );
      expect400(
        await asKey('/v1/images/generations', { model: 'mock-image' }),
        'prompt: is required',
        'prompt',
      );
    });

    it('/v1/generations names the field inside request', async () => {
      expect400(
        await asKey('/v1/generations', { type: 'chat', request: { ...chat, temperature: '0.7' } }),
        'temperature: expected a number',
        'request.temperature',
      );
      expect400(
        await asKey('/v1/generations', { type: 'chat', request: { model: 'mock-gpt' } }),
        'messages: is required',
        'request.messages',
      );
    });

    it('PATCH /admin/providers/:id', async () => {
      const list = await asAdmin('GET', '/admin/providers');
      const id = (list.json.data as { id: string; name: string }[]).find(
        (p) => p.name === 'mock',
      )!.id;
      expect400(
        await asAdmin('PATCH', `/admin/providers/${id}`, { priority: '7' }),
        'priority: expected a number',
        'priority',
      );
      expect400(
        await asAdmin('PATCH', `/admin/providers/${id}`, { enabled: null }),
        'enabled: expected a boolean',
        'enabled',
      );
    });
  });

  describe('unknown routes and methods under /health answer the error envelope', () => {
    it.each([
      ['POST', '/health'],
      ['GET', '/health/nope'],
      ['DELETE', '/health/ready'],
      ['GET', '/healthz'],
    ])('%s %s → 404 not_found like any unknown route', async (method, path) => {
      const unknown = await call(gw.url, '/nope');
      const res = await call(gw.url, path, { method });
      expect(res.status).toBe(404);
      expect(isEnvelope(res.json)).toBe(true);
      expect(res.json.error).toEqual({
        ...unknown.json.error,
        message: `Unknown route: ${method} ${path}`,
        request_id: res.headers.get('x-request-id'),
      });
    });
  });

  describe('POST /admin/sessions checks expires_at like /admin/keys', () => {
    const session = (n: number, expires_at: unknown) => ({
      cookie_text: `sso=input-fixes-credential-${n}`,
      provider: 'grok',
      expires_at,
    });

    it.each([
      '1',
      '2099-02-30T00:00:00Z',
      '2100-02-29T00:00:00Z',
      '2099-01-01',
      '2099-01-01T00:00:00',
      'soon',
      42,
    ])('refuses %j with 400', async (value) => {
      const res = await asAdmin('POST', '/admin/sessions', session(0, value));
      // A value of the wrong type gets the wording every route gives it (docs/api.md).
      const message =
        typeof value === 'string'
          ? 'expires_at must be an ISO 8601 date-time'
          : 'expires_at: expected a string';
      expect400(res, message, 'expires_at');
      // The same value is refused by /admin/keys.
      const key = await asAdmin('POST', '/admin/keys', {
        user_id: consumer.userId,
        name: 'k',
        expires_at: value,
      });
      expect(key.status).toBe(400);
    });

    it('accepts an ISO 8601 date-time with Z or an offset, and null', async () => {
      const z = await asAdmin('POST', '/admin/sessions', session(1, '2099-03-01T00:00:00Z'));
      expect(z.status).toBe(201);
      expect(z.json.expires_at).toBe('2099-03-01T00:00:00.000Z');
      const offset = await asAdmin(
        'POST',
        '/admin/sessions',
        session(2, '2096-02-29T01:30:00+02:00'),
      );
      expect(offset.status).toBe(201);
      expect(offset.json.expires_at).toBe('2096-02-28T23:30:00.000Z');
      const none = await asAdmin('POST', '/admin/sessions', session(3, null));
      expect(none.status).toBe(201);
      expect(none.json.expires_at).toBeNull();
    });
  });

  // Last: readiness stays down for the rest of this gateway's life.
  it('the real health endpoints keep their own bodies, 503 included', async () => {
    const ok = await call(gw.url, '/health/ready');
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ status: 'ok', info: { database: { status: 'up' } } });
    gw.gateway.app.get(LifecycleService).beginShutdown();
    const down = await call(gw.url, '/health/ready');
    expect(down.status).toBe(503);
    expect(down.json).toMatchObject({
      status: 'error',
      error: { lifecycle: { status: 'down', message: 'shutting down' } },
      details: { database: { status: 'up' } },
    });
    expect(isEnvelope(down.json)).toBe(false);
  });
});
