import type { IncomingMessage, ServerResponse } from 'node:http';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { LocalUpstream } from './support/local-upstream';
import { writeProvidersFile } from './support/mock-upstream';

/**
 * An upstream that repeats the credential it received in its error message, as some do
 * ("incorrect API key provided: sk-…"): `status` 500 or a 4xx the gateway passes through, or 200
 * with an SSE error event for a stream. /models answers 200 (session health checks).
 */
class EchoingUpstream extends LocalUpstream {
  status = 500;
  /** Stream: one content chunk before the error event, so the error comes mid-stream. */
  chunkFirst = false;

  protected handle(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    req.on('end', () => {
      if (req.url?.endsWith('/models')) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ object: 'list', data: [] }));
        return;
      }
      const auth = req.headers.authorization ?? '';
      const received = auth.startsWith('Bearer ') ? auth.slice(7) : (req.headers.cookie ?? '');
      const message =
        `bad credential ${received} auth=${auth} cookie=${req.headers.cookie ?? ''}` +
        ` url=https://login.example/?session=${encodeURIComponent(received)}`;
      const error = { message, type: 'invalid_request_error', code: null, param: null };
      if ((req.headers.accept ?? '').includes('text/event-stream')) {
        const chunk = {
          id: 'chatcmpl-echo',
          object: 'chat.completion.chunk',
          created: Math.floor(Date.now() / 1000),
          model: 'keyed-model',
          choices: [{ index: 0, delta: { content: 'partial' }, finish_reason: null }],
        };
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        if (this.chunkFirst) res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        res.end(`data: ${JSON.stringify({ error })}\n\n`);
        return;
      }
      res.writeHead(this.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error }));
    });
  }
}

describe('credentials an upstream echoes in its error message', () => {
  const API_KEY = 'upstream-secret-key-ABCDEF123456';
  let upstream: EchoingUpstream;
  let gw: TestGateway;
  let consumer: TestConsumer;
  let token: string;

  beforeAll(async () => {
    upstream = await new EchoingUpstream().start();
    const file = writeProvidersFile(
      [
        'providers:',
        '  - name: flaky',
        '    kind: openai',
        `    base_url: ${upstream.url}`,
        `    api_key: ${API_KEY}`,
        '    models: [keyed-model]',
        '    timeout_ms: 3000',
        '  - name: pool',
        '    kind: openai',
        `    base_url: ${upstream.url}`,
        '    session_auth: bearer',
        '    models: [bearer-model]',
        '    timeout_ms: 3000',
        '  - name: jar',
        '    kind: openai',
        `    base_url: ${upstream.url}`,
        '    session_auth: cookie',
        '    models: [cookie-model]',
        '    timeout_ms: 3000',
        '',
      ].join('\n'),
    );
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        CB_FAILURE_THRESHOLD: '1000',
        UPSTREAM_RETRY_BACKOFF_MS: '0',
        SESSION_FAILURE_WINDOW: '1000',
        SESSION_FAILURE_MIN_SAMPLE: '1000',
      },
    });
    consumer = await newConsumer(gw, { credits: 100000 });
    token = (await adminToken(gw)).token;
  });

  afterAll(async () => {
    await gw?.close();
    await upstream?.stop();
  });

  const addSession = async (provider: string, cookie_text: string) => {
    const res = await fetch(`${gw.url}/admin/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ cookie_text, provider }),
    });
    expect(res.status).toBe(201);
  };

  const chat = async (model: string, stream = false) => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'hi' }] }),
    });
    return { status: res.status, text: await res.text() };
  };

  /** Sends one request that fails upstream with `status` and checks what leaked where. */
  const expectScrubbed = async (
    model: string,
    provider: string,
    secrets: string[],
    status: number,
    { stream = false, midStream = false } = {},
  ) => {
    upstream.status = status;
    upstream.chunkFirst = midStream;
    const logsBefore = gw.logs.length;
    const res = await chat(model, stream);
    // The pass-through keeps the upstream's status and its (scrubbed) message.
    if (status >= 400 && status < 500) {
      expect(res.status).toBe(status);
      expect(JSON.parse(res.text).error.message).toMatch(/^bad credential \[REDACTED\]/);
    } else expect(res.status).toBe(midStream ? 200 : 502);
    for (const secret of secrets) expect(res.text).not.toContain(secret);
    const logs = gw.logs.slice(logsBefore).join('\n');
    expect(logs).toContain(`upstream attempt failed: `);
    expect(logs).toContain(provider);
    expect(logs).toContain('bad credential [REDACTED]');
    for (const secret of secrets) expect(logs).not.toContain(secret);
  };

  it('redacts a provider api_key from a 500 in the log line', async () => {
    await expectScrubbed('keyed-model', 'flaky', [API_KEY], 500);
  });

  it('redacts a provider api_key from a passed-through 400/404/413/422, for the client and the log', async () => {
    for (const status of [400, 404, 413, 422])
      await expectScrubbed('keyed-model', 'flaky', [API_KEY], status);
  });

  it('redacts a provider api_key from a stream error event in the log line', async () => {
    await expectScrubbed('keyed-model', 'flaky', [API_KEY], 200, { stream: true });
  });

  it('redacts a provider api_key from a mid-stream error event in the log line', async () => {
    await expectScrubbed('keyed-model', 'flaky', [API_KEY], 200, {
      stream: true,
      midStream: true,
    });
  });

  it('redacts a bearer session credential from a 500 and a passed-through 400', async () => {
    const credential = 'sql-injected-token-zzzz9999';
    await addSession('pool', credential);
    await expectScrubbed('bearer-model', 'pool', [credential], 500);
    await expectScrubbed('bearer-model', 'pool', [credential], 400);
  });

  it('redacts a cookie session credential, whole, by value and percent-encoded, from a 500 and a passed-through 400', async () => {
    const value = 'cookie-session-value/7777+QQQQ=';
    const cookie = `sso=${value}; lang=en`;
    await addSession('jar', cookie);
    const secrets = [cookie, value, encodeURIComponent(cookie), encodeURIComponent(value)];
    await expectScrubbed('cookie-model', 'jar', secrets, 500);
    await expectScrubbed('cookie-model', 'jar', secrets, 400);
  });
});
