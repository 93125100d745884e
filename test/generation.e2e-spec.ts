import { request as httpRequest } from 'node:http';
import OpenAI from 'openai';
import { newConsumer, adminToken } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, writeProvidersFile } from './support/mock-upstream';

const UPSTREAM_KEY = 'sk-upstream-primary-0123456789';

function sdk(gw: TestGateway, key: string): OpenAI {
  return new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 20_000 });
}

/** Resolves to the API error an SDK call failed with. */
async function apiError(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof OpenAI.APIError) return err;
    throw err;
  }
  throw new Error('expected the call to fail');
}

async function metrics(gw: TestGateway): Promise<string> {
  return (await fetch(`${gw.url}/metrics`)).text();
}

describe('generation: OpenAI-compatible endpoints over real upstreams', () => {
  let gw: TestGateway;
  let primary: MockUpstream;
  let secondary: MockUpstream;
  let solo: MockUpstream;
  let client: OpenAI;
  let key: string;
  let admin: string;

  beforeAll(async () => {
    primary = await startMockUpstream('primary');
    secondary = await startMockUpstream('secondary');
    solo = await startMockUpstream('solo');
    const file = writeProvidersFile(`
providers:
  - name: primary
    kind: openai
    base_url: ${primary.url}
    api_key: \${SY_TEST_PRIMARY_KEY}
    priority: 1
    models: [up-gpt, up-image]
    timeout_ms: 2000
  - name: secondary
    kind: openai
    base_url: ${secondary.url}
    priority: 2
    models: [up-gpt]
    timeout_ms: 2000
  - name: solo
    kind: openai
    base_url: ${solo.url}
    priority: 1
    models: [solo-gpt]
    timeout_ms: 700
  - name: mock
    kind: mock
    priority: 5
    models: [mock-gpt, mock-image]
  - name: sessioned
    kind: openai
    base_url: ${solo.url}
    session_auth: bearer
    models: [session-gpt]
`);
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        SY_TEST_PRIMARY_KEY: UPSTREAM_KEY,
        CB_FAILURE_THRESHOLD: '1000',
        UPSTREAM_RETRY_BACKOFF_MS: '10',
      },
    });
    key = (await newConsumer(gw, { credits: 1_000_000, scopes: ['chat', 'images'] })).key;
    client = sdk(gw, key);
    admin = (await adminToken(gw)).token;
  });

  afterAll(async () => {
    await gw?.close();
    await Promise.all([primary, secondary, solo].map((u) => u?.stop()));
  });

  beforeEach(() => {
    for (const u of [primary, secondary, solo]) u.reset();
  });

  describe('models and chat', () => {
    it('lists the models of enabled providers in OpenAI shape', async () => {
      const page = await client.models.list();
      const ids = page.data.map((m) => m.id);
      expect(ids).toEqual(
        expect.arrayContaining(['up-gpt', 'up-image', 'solo-gpt', 'mock-gpt', 'mock-image']),
      );
      const up = page.data.find((m) => m.id === 'up-gpt');
      expect(up).toMatchObject({ object: 'model', owned_by: 'primary' });
    });

    it('answers a chat completion from the upstream, with its usage and x-provider', async () => {
      primary.always({
        mode: 'ok',
        content: 'four',
        usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 },
      });
      const { data, response } = await client.chat.completions
        .create({ model: 'up-gpt', messages: [{ role: 'user', content: '2+2?' }] })
        .withResponse();
      expect(data.choices[0].message.content).toBe('four');
      expect(data.usage).toEqual({ prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 });
      expect(response.headers.get('x-provider')).toBe('primary');
      expect(response.headers.get('x-request-id')).toBeTruthy();
      expect(primary.count).toBe(1);
      const sent = primary.requests[0];
      expect(sent.path).toBe('/v1/chat/completions');
      expect(sent.body).toMatchObject({
        model: 'up-gpt',
        messages: [{ role: 'user', content: '2+2?' }],
        stream: false,
      });
      expect(sent.headers.authorization).toBe(`Bearer ${UPSTREAM_KEY}`);
      expect(sent.headers['x-request-id']).toBe(response.headers.get('x-request-id'));
    });

    it('sends a non-streaming request upstream with stream false and no stream_options', async () => {
      primary.always({ mode: 'ok', content: 'ok' });
      for (const stream of [null, false]) {
        await client.chat.completions.create({
          model: 'up-gpt',
          messages: [{ role: 'user', content: 'hi' }],
          stream: stream as false,
          stream_options: { include_usage: true },
        });
      }
      expect(primary.requests).toHaveLength(2);
      for (const sent of primary.requests) {
        expect(sent.body.stream).toBe(false);
        expect(sent.body).not.toHaveProperty('stream_options');
      }
    });

    it('serves the built-in mock provider deterministically', async () => {
      const ask = () =>
        client.chat.completions.create({
          model: 'mock-gpt',
          messages: [{ role: 'user', content: 'ping' }],
        });
      const [a, b] = [await ask(), await ask()];
      expect(a.choices[0].message.content).toContain('ping');
      expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
      expect(a.usage?.total_tokens).toBeGreaterThan(0);
    });

    it('streams chunks as they arrive, not all at the end', async () => {
      primary.always({ mode: 'ok', content: 'abcdefgh', chunks: 4, holdAfter: 2 });
      const stream = await client.chat.completions.create({
        model: 'up-gpt',
        messages: [{ role: 'user', content: 'stream please' }],
        stream: true,
      });
      const received: string[] = [];
      let released = false;
      for await (const chunk of stream) {
        const piece = chunk.choices[0]?.delta?.content;
        if (piece) received.push(piece);
        // The upstream holds the rest back until released: these chunks came through first.
        if (received.join('') === 'abcd' && !released) {
          expect(primary.requests[0].finished).toBe(false);
          released = true;
          primary.release();
        }
      }
      expect(released).toBe(true);
      expect(received.join('')).toBe('abcdefgh');
    });

    it('passes usage in the stream only when stream_options.include_usage asks for it', async () => {
      primary.always({
        mode: 'ok',
        content: 'xyz',
        usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      });
      const collect = async (includeUsage: boolean) => {
        const stream = await client.chat.completions.create({
          model: 'up-gpt',
          messages: [{ role: 'user', content: 'u' }],
          stream: true,
          ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
        });
        const usages = [];
        for await (const chunk of stream) if (chunk.usage) usages.push(chunk.usage);
        return usages;
      };
      expect(await collect(true)).toEqual([
        { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
      ]);
      expect(await collect(false)).toEqual([]);
      // Usage is always requested upstream: billing needs it either way.
      for (const r of primary.requests)
        expect(r.body.stream_options).toEqual({ include_usage: true });
    });

    it('generates images', async () => {
      const { data, response } = await client.images
        .generate({ model: 'up-image', prompt: 'a lighthouse', n: 2 })
        .withResponse();
      expect(data.data).toHaveLength(2);
      expect(data.data?.[0].url).toMatch(/^https:\/\/images\.test\//);
      expect(response.headers.get('x-provider')).toBe('primary');
      expect(primary.requests[0].path).toBe('/v1/images/generations');
      const mock = await client.images.generate({
        model: 'mock-image',
        prompt: 'x',
        response_format: 'b64_json',
      });
      expect(mock.data?.[0].b64_json).toBeTruthy();
    });
  });

  describe('request validation', () => {
    const post = (path: string, body: unknown) =>
      fetch(`${gw.url}/v1/${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const cases: [string, string, unknown, string | null][] = [
      ['no messages', 'chat/completions', { model: 'up-gpt' }, 'messages'],
      ['empty messages', 'chat/completions', { model: 'up-gpt', messages: [] }, 'messages'],
      [
        'a bad role',
        'chat/completions',
        { model: 'up-gpt', messages: [{ role: 'wizard', content: 'x' }] },
        'messages[0].role',
      ],
      [
        'content of the wrong type',
        'chat/completions',
        { model: 'up-gpt', messages: [{ role: 'user', content: 42 }] },
        'messages[0].content',
      ],
      [
        'temperature above 2',
        'chat/completions',
        { model: 'up-gpt', temperature: 3, messages: [{ role: 'user', content: 'x' }] },
        'temperature',
      ],
      [
        'n above 10',
        'chat/completions',
        { model: 'up-gpt', n: 11, messages: [{ role: 'user', content: 'x' }] },
        'n',
      ],
      [
        'max_tokens of 0',
        'chat/completions',
        { model: 'up-gpt', max_tokens: 0, messages: [{ role: 'user', content: 'x' }] },
        'max_tokens',
      ],
      [
        'an unknown field',
        'chat/completions',
        { model: 'up-gpt', tempreature: 1, messages: [{ role: 'user', content: 'x' }] },
        'tempreature',
      ],
      ['no model', 'chat/completions', { messages: [{ role: 'user', content: 'x' }] }, 'model'],
      ['a body that is a list', 'chat/completions', [1, 2], null],
      ['an image prompt missing', 'images/generations', { model: 'up-image' }, 'prompt'],
      ['too many images', 'images/generations', { model: 'up-image', prompt: 'x', n: 11 }, 'n'],
      [
        'a bad image size',
        'images/generations',
        { model: 'up-image', prompt: 'x', size: 'huge' },
        'size',
      ],
    ];
    it.each(cases)('rejects %s with 400 naming the parameter', async (_name, path, body, param) => {
      const res = await post(path, body);
      expect(res.status).toBe(400);
      const { error } = await res.json();
      expect(error).toMatchObject({ type: 'invalid_request_error', param });
      expect(typeof error.message).toBe('string');
      expect(primary.count).toBe(0);
    });

    it('answers 404 model_not_found for an unknown model', async () => {
      const err = await apiError(
        client.chat.completions.create({
          model: 'no-such-model',
          messages: [{ role: 'user', content: 'x' }],
        }),
      );
      expect(err.status).toBe(404);
      expect(err.code).toBe('model_not_found');
      expect(err.param).toBe('model');
    });
  });

  const loggedFor = (requestId: string, message: string) =>
    gw.logs.some((l) => l.includes(`"request_id":"${requestId}"`) && l.includes(message));

  describe('upstream faults reach the client in the gateway vocabulary', () => {
    const ask = () =>
      client.chat.completions.create({
        model: 'solo-gpt',
        messages: [{ role: 'user', content: 'x' }],
      });

    it.each([
      ['a 500', { mode: 'status', status: 500 }, 502, 'upstream_error'],
      ['a connection reset', { mode: 'reset' }, 502, 'upstream_error'],
      ['malformed JSON', { mode: 'malformed' }, 502, 'upstream_error'],
      ['a body cut short', { mode: 'cut' }, 502, 'upstream_error'],
      ['a hang past timeout_ms', { mode: 'hang' }, 504, 'upstream_timeout'],
      [
        'a 401 (never passed on as 401)',
        { mode: 'status', status: 401 },
        502,
        'upstream_auth_failed',
      ],
      [
        'a 403 (never passed on as 403)',
        { mode: 'status', status: 403 },
        502,
        'upstream_auth_failed',
      ],
    ] as const)('maps %s to the right status and code', async (_name, behaviour, status, code) => {
      solo.always(behaviour as never);
      const err = await apiError(ask());
      expect(err.status).toBe(status);
      expect(err.code).toBe(code);
      expect((err.error as { type: string }).type).toBe('upstream_error');
      expect(solo.count).toBe(1);
      // The failure's log line names the request, as the error body does.
      const requestId = (err.error as { request_id: string }).request_id;
      expect(loggedFor(requestId, 'upstream attempt failed')).toBe(true);
    });

    it('maps a 429 to 503 with Retry-After, never to the client its own 429', async () => {
      solo.always({ mode: 'status', status: 429, retryAfter: 7 });
      const err = await apiError(ask());
      expect(err.status).toBe(503);
      expect(err.code).toBe('upstream_rate_limited');
      expect(err.headers?.get('retry-after')).toBe('7');
    });

    it("passes the upstream's own 400 through, untried elsewhere", async () => {
      primary.always({ mode: 'status', status: 400, message: 'context too long' });
      const err = await apiError(
        client.chat.completions.create({
          model: 'up-gpt',
          messages: [{ role: 'user', content: 'x' }],
        }),
      );
      expect(err.status).toBe(400);
      expect(err.message).toContain('context too long');
      expect(primary.count).toBe(1);
      expect(secondary.count).toBe(0);
    });

    it('says 503 no_healthy_sessions for a session_auth provider with no credential', async () => {
      const err = await apiError(
        client.chat.completions.create({
          model: 'session-gpt',
          messages: [{ role: 'user', content: 'x' }],
        }),
      );
      expect(err.status).toBe(503);
      expect(err.code).toBe('no_healthy_sessions');
    });

    it('counts each attempt by provider, model and outcome', async () => {
      solo.always({ mode: 'status', status: 500 });
      await apiError(ask());
      const text = await metrics(gw);
      expect(text).toMatch(
        /gateway_upstream_requests_total\{provider="solo",model="solo-gpt",outcome="server_error"\} [1-9]/,
      );
      expect(text).toMatch(/gateway_upstream_duration_seconds_count\{provider="solo"\} [1-9]/);
    });
  });

  describe('streams that go wrong', () => {
    it('tells the client when the upstream cuts a stream mid-way', async () => {
      solo.always({ mode: 'cut', afterChunks: 2 });
      const { data: stream, response } = await client.chat.completions
        .create({
          model: 'solo-gpt',
          messages: [{ role: 'user', content: 'x' }],
          stream: true,
        })
        .withResponse();
      const received: string[] = [];
      const err = await apiError(
        (async () => {
          for await (const chunk of stream) {
            const piece = chunk.choices[0]?.delta?.content;
            if (piece) received.push(piece);
          }
        })(),
      );
      expect(received.length).toBe(2);
      expect(err.code).toBe('stream_interrupted');
      expect(solo.count).toBe(1);
      const requestId = response.headers.get('x-request-id')!;
      // The stream's outcome is logged once the relay has ended, just after the client's error.
      for (let i = 0; i < 50 && !loggedFor(requestId, 'upstream stream cut'); i++)
        await new Promise((r) => setTimeout(r, 20));
      expect(loggedFor(requestId, 'upstream stream cut')).toBe(true);
    });

    it('retries a stream that fails before its first byte on the next provider', async () => {
      primary.always({ mode: 'status', status: 503 });
      secondary.always({ mode: 'ok', content: 'from the second' });
      const { data: stream, response } = await client.chat.completions
        .create({ model: 'up-gpt', messages: [{ role: 'user', content: 'x' }], stream: true })
        .withResponse();
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      expect(text).toBe('from the second');
      expect(response.headers.get('x-provider')).toBe('secondary');
    });

    it('answers 502 when a stream sends garbage before any chunk', async () => {
      solo.always({ mode: 'malformed' });
      const err = await apiError(
        client.chat.completions.create({
          model: 'solo-gpt',
          messages: [{ role: 'user', content: 'x' }],
          stream: true,
        }),
      );
      expect(err.status).toBe(502);
    });

    it('holds the upstream back while the client reads slowly (backpressure)', async () => {
      // 32 MiB in 8000 chunks: far more than the socket buffers between the three processes.
      primary.always({ mode: 'ok', content: 'x'.repeat(32 * 1024 * 1024), chunks: 8000 });
      const received = await new Promise<{ pausedFinished: boolean; bytes: number }>(
        (resolve, reject) => {
          const req = httpRequest(
            `${gw.url}/v1/chat/completions`,
            {
              method: 'POST',
              headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
            },
            (res) => {
              res.pause();
              setTimeout(() => {
                const pausedFinished = primary.requests[0]?.finished ?? true;
                let bytes = 0;
                res.on('data', (chunk: Buffer) => (bytes += chunk.length));
                res.on('end', () => resolve({ pausedFinished, bytes }));
                res.resume();
              }, 1500);
            },
          );
          req.on('error', reject);
          req.end(
            JSON.stringify({
              model: 'up-gpt',
              messages: [{ role: 'user', content: 'x' }],
              stream: true,
            }),
          );
        },
      );
      expect(received.pausedFinished).toBe(false);
      expect(received.bytes).toBeGreaterThan(32 * 1024 * 1024);
      expect(primary.requests[0].finished).toBe(true);
      expect(primary.requests[0].aborted).toBe(false);
    });

    it('cancels the upstream stream when the client goes away', async () => {
      primary.always({ mode: 'ok', content: 'abcdefgh', chunks: 4, holdAfter: 1 });
      const controller = new AbortController();
      const stream = await client.chat.completions.create(
        { model: 'up-gpt', messages: [{ role: 'user', content: 'x' }], stream: true },
        { signal: controller.signal },
      );
      let pieces = 0;
      try {
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta?.content) pieces++;
          if (pieces === 1) controller.abort();
        }
      } catch {
        // the SDK may end the loop quietly or throw an abort error
      }
      expect(pieces).toBe(1);
      // The upstream was holding the rest back: only the gateway's abort can close it.
      await primary.waitFor(() => primary.requests[0]?.aborted === true);
      expect(secondary.count).toBe(0);
    });

    it('cancels a pending non-streaming upstream call when the client goes away', async () => {
      solo.always({ mode: 'hang' });
      const controller = new AbortController();
      const pending = client.chat.completions.create(
        { model: 'solo-gpt', messages: [{ role: 'user', content: 'x' }] },
        { signal: controller.signal },
      );
      await solo.waitFor(() => solo.count === 1);
      controller.abort();
      await expect(pending).rejects.toThrow();
      await solo.waitFor(() => solo.requests[0].aborted);
    });
  });

  describe('routing and fallback', () => {
    const ask = () =>
      client.chat.completions
        .create({ model: 'up-gpt', messages: [{ role: 'user', content: 'x' }] })
        .withResponse();

    it('falls back to the second provider and back when the first recovers', async () => {
      primary.always({ mode: 'status', status: 500 });
      secondary.always({ mode: 'ok', content: 'second' });
      const down = await ask();
      expect(down.data.choices[0].message.content).toBe('second');
      expect(down.response.headers.get('x-provider')).toBe('secondary');
      expect([primary.count, secondary.count]).toEqual([1, 1]);
      primary.always({ mode: 'ok', content: 'first' });
      const up = await ask();
      expect(up.data.choices[0].message.content).toBe('first');
      expect(up.response.headers.get('x-provider')).toBe('primary');
      expect([primary.count, secondary.count]).toEqual([2, 1]);
    });

    it.each([
      ['a timeout', { mode: 'hang' }],
      ['a connection reset', { mode: 'reset' }],
      ['a 429', { mode: 'status', status: 429 }],
      ['malformed JSON', { mode: 'malformed' }],
    ] as const)('moves on after %s', async (_name, behaviour) => {
      primary.always(behaviour as never);
      const res = await ask();
      expect(res.response.headers.get('x-provider')).toBe('secondary');
    });

    it('answers from the best of the failures when every provider fails', async () => {
      primary.always({ mode: 'status', status: 500 });
      secondary.always({ mode: 'status', status: 502 });
      const err = await apiError(ask());
      expect(err.status).toBe(502);
      expect(err.code).toBe('upstream_error');
      expect([primary.count, secondary.count]).toEqual([1, 1]);
    });

    it('switches providers at run time with PATCH /admin/providers (priority, enabled)', async () => {
      const list = await (
        await fetch(`${gw.url}/admin/providers`, { headers: { authorization: `Bearer ${admin}` } })
      ).json();
      const byName = (n: string) => list.data.find((p: { name: string }) => p.name === n);
      expect(byName('primary')).toMatchObject({
        kind: 'openai',
        priority: 1,
        enabled: true,
        has_api_key: true,
        breaker_state: 'closed',
      });
      expect(byName('primary')).not.toHaveProperty('api_key');
      const patch = (id: string, body: unknown) =>
        fetch(`${gw.url}/admin/providers/${id}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      try {
        const res = await patch(byName('secondary').id, { priority: 0 });
        expect(res.status).toBe(200);
        expect((await res.json()).priority).toBe(0);
        expect((await ask()).response.headers.get('x-provider')).toBe('secondary');
        expect((await patch(byName('secondary').id, { enabled: false })).status).toBe(200);
        expect((await ask()).response.headers.get('x-provider')).toBe('primary');
        // The only provider of a model disabled: the model is unavailable, not unknown.
        expect((await patch(byName('solo').id, { enabled: false })).status).toBe(200);
        const models = (await client.models.list()).data.map((m) => m.id);
        expect(models).not.toContain('solo-gpt');
        const err = await apiError(
          client.chat.completions.create({
            model: 'solo-gpt',
            messages: [{ role: 'user', content: 'x' }],
          }),
        );
        expect(err.status).toBe(503);
        expect(err.code).toBe('model_unavailable');
      } finally {
        await patch(byName('secondary').id, { priority: 2, enabled: true });
        await patch(byName('solo').id, { enabled: true });
      }
      const audit = await (
        await fetch(`${gw.url}/admin/audit?action=provider.update`, {
          headers: { authorization: `Bearer ${admin}` },
        })
      ).json();
      expect(audit.data.length).toBeGreaterThanOrEqual(3);
    });

    it('validates PATCH /admin/providers/:id', async () => {
      const patch = (id: string, body: unknown) =>
        fetch(`${gw.url}/admin/providers/${id}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
      expect((await patch('not-a-uuid', { priority: 1 })).status).toBe(400);
      expect((await patch('00000000-0000-4000-8000-000000000000', { priority: 1 })).status).toBe(
        404,
      );
      const list = await (
        await fetch(`${gw.url}/admin/providers`, { headers: { authorization: `Bearer ${admin}` } })
      ).json();
      const id = list.data.find((p: { name: string }) => p.name === 'primary').id;
      expect((await patch(id, { priority: -1 })).status).toBe(400);
      expect((await patch(id, {})).status).toBe(400);
      expect((await patch(id, { api_key: 'x' })).status).toBe(400);
      expect((await patch(id, { settings: { latency_ms: 5 } })).status).toBe(400);
      expect(
        (await fetch(`${gw.url}/admin/providers`, { headers: { authorization: `Bearer ${key}` } }))
          .status,
      ).toBe(401);
    });

    it('spreads load across providers of equal priority', async () => {
      const list = await (
        await fetch(`${gw.url}/admin/providers`, { headers: { authorization: `Bearer ${admin}` } })
      ).json();
      const secondaryId = list.data.find((p: { name: string }) => p.name === 'secondary').id;
      const patch = (priority: number) =>
        fetch(`${gw.url}/admin/providers/${secondaryId}`, {
          method: 'PATCH',
          headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
          body: JSON.stringify({ priority }),
        });
      await patch(1);
      try {
        for (let i = 0; i < 24; i++) await ask();
        expect(primary.count).toBeGreaterThan(0);
        expect(secondary.count).toBeGreaterThan(0);
        expect(primary.count + secondary.count).toBe(24);
      } finally {
        await patch(2);
      }
    });
  });
});

describe('generation: overall deadline', () => {
  it('gives up with 504 once UPSTREAM_DEADLINE_MS has passed, whatever is left to try', async () => {
    const a = await startMockUpstream('a');
    const b = await startMockUpstream('b');
    const c = await startMockUpstream('c');
    for (const u of [a, b, c]) u.always({ mode: 'hang' });
    const file = writeProvidersFile(`
providers:
${['a', 'b', 'c']
  .map(
    (n, i) =>
      `  - { name: ${n}, kind: openai, base_url: "${[a, b, c][i].url}", priority: ${i + 1}, models: [slow-gpt], timeout_ms: 600 }`,
  )
  .join('\n')}
`);
    const gw = await startGateway({
      env: { PROVIDERS_FILE: file, UPSTREAM_DEADLINE_MS: '1000', UPSTREAM_RETRY_BACKOFF_MS: '0' },
    });
    try {
      const { key } = await newConsumer(gw);
      const err = await apiError(
        sdk(gw, key).chat.completions.create({
          model: 'slow-gpt',
          messages: [{ role: 'user', content: 'x' }],
        }),
      );
      expect(err.status).toBe(504);
      expect(err.code).toBe('upstream_timeout');
      // a used its 600 ms, b got the 400 ms left; c was never tried.
      expect([a.count, b.count, c.count]).toEqual([1, 1, 0]);
    } finally {
      await gw.close();
      for (const u of [a, b, c]) await u.stop();
    }
  });
});

function postWithoutKeepAlive(
  url: string,
  key: string,
  body: unknown,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe('generation: graceful shutdown', () => {
  it('finishes a slow upstream request started before shutdown, while readiness says 503', async () => {
    const slow = await startMockUpstream('slow');
    slow.always({ mode: 'ok', content: 'made it', delayMs: 1500 });
    const file = writeProvidersFile(`
providers:
  - { name: slow, kind: openai, base_url: "${slow.url}", models: [slow-gpt], timeout_ms: 5000 }
`);
    const gw = await startGateway({ env: { PROVIDERS_FILE: file, SHUTDOWN_GRACE_MS: '4000' } });
    try {
      const { key } = await newConsumer(gw);
      // A client without keep-alive: an idle kept-alive socket would hold the drain open until
      // its own timeout, which is not what this test is about.
      const pending = postWithoutKeepAlive(`${gw.url}/v1/chat/completions`, key, {
        model: 'slow-gpt',
        messages: [{ role: 'user', content: 'x' }],
      });
      await slow.waitFor(() => slow.count === 1);
      const stopping = gw.gateway.shutdown();
      // In-process probe: the listener no longer accepts new connections while draining.
      const ready = await gw.gateway.app
        .getHttpAdapter()
        .getInstance()
        .inject({ method: 'GET', url: '/health/ready' });
      expect(ready.statusCode).toBe(503);
      expect(ready.json().error.lifecycle).toEqual({ status: 'down', message: 'shutting down' });
      const answer = await pending;
      expect(answer.status).toBe(200);
      expect(JSON.parse(answer.body).choices[0].message.content).toBe('made it');
      expect(slow.requests[0].aborted).toBe(false);
      await stopping;
      expect(gw.logText()).toContain('shutdown complete');
    } finally {
      await gw.close();
      await slow.stop();
    }
  });
});
