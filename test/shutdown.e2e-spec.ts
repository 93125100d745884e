import { Agent, request as httpRequest } from 'node:http';
import { RedisService } from '@app/redis';
import { newConsumer } from './support/auth-factory';
import { startGateway } from './support/gateway';
import { startMockUpstream, writeProvidersFile } from './support/mock-upstream';
import { rawRequest } from './faults/harness';
import { waitFor } from './support/wait-for';

describe('graceful shutdown over real connections', () => {
  it('answers readiness 503 during the drain delay, finishes a kept-alive in-flight request, and does not wait for idle keep-alive', async () => {
    const slow = await startMockUpstream('slow');
    slow.always({ mode: 'ok', content: 'made it', delayMs: 1500 });
    const file = writeProvidersFile(`
providers:
  - { name: slow, kind: openai, base_url: "${slow.url}", models: [slow-gpt], timeout_ms: 5000 }
`);
    const gw = await startGateway({
      env: { PROVIDERS_FILE: file, SHUTDOWN_GRACE_MS: '5000', SHUTDOWN_DRAIN_DELAY_MS: '800' },
    });
    try {
      const { key } = await newConsumer(gw);
      // fetch keeps connections alive: the in-flight request's socket stays open after its answer.
      const pending = fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'slow-gpt', messages: [{ role: 'user', content: 'x' }] }),
      });
      await slow.waitFor(() => slow.count === 1);
      const started = Date.now();
      const stopping = gw.gateway.shutdown();
      // A real probe over a new connection, during the drain delay.
      const ready = await fetch(`${gw.url}/health/ready`);
      expect(ready.status).toBe(503);
      const answer = await pending;
      expect(answer.status).toBe(200);
      expect(answer.headers.get('connection')).toBe('close');
      expect((await answer.json()).choices[0].message.content).toBe('made it');
      await stopping;
      // Finished with the request, well before the grace period or a keep-alive timeout.
      expect(Date.now() - started).toBeLessThan(4500);
      expect(gw.logText()).toContain('shutdown complete');
    } finally {
      await gw.close();
      await slow.stop();
    }
  });

  it('serves a request that arrives on an open connection during the drain', async () => {
    const gw = await startGateway({ env: { SHUTDOWN_GRACE_MS: '5000' } });
    try {
      const { key } = await newConsumer(gw);
      // A request whose headers are half sent keeps its connection busy when the drain begins;
      // the rest arrives during the drain. Fastify's own answer to that was a bare 503.
      const reply = rawRequest(
        gw.url,
        [`GET /v1/models HTTP/1.1\r\nhost: x\r\n`, `authorization: Bearer ${key}\r\n\r\n`],
        { gapMs: 700 },
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      const stopping = gw.gateway.shutdown();
      const { status, head, body } = await reply;
      await stopping;
      expect(status).toBe(200);
      expect(head).toMatch(/^connection: close$/im);
      expect(JSON.parse(body)).toMatchObject({ object: 'list' });
    } finally {
      await gw.close();
    }
  });

  it('finishes a stream in flight and hangs up its kept-alive connection instead of waiting out the grace period', async () => {
    const up = await startMockUpstream('streaming');
    up.always({ mode: 'ok', content: 'streamed to the end', chunks: 4, holdAfter: 1 });
    const file = writeProvidersFile(`
providers:
  - { name: streaming, kind: openai, base_url: "${up.url}", models: [stream-gpt], timeout_ms: 5000 }
`);
    const gw = await startGateway({ env: { PROVIDERS_FILE: file, SHUTDOWN_GRACE_MS: '20000' } });
    try {
      const { key } = await newConsumer(gw);
      // A keep-alive agent that holds idle sockets open for minutes, as the SDKs' agents do
      // (fetch's own closes them after 4 s, which would hide the problem).
      const agent = new Agent({ keepAlive: true });
      const body = new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest(
          `${gw.url}/v1/chat/completions`,
          {
            method: 'POST',
            agent,
            headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          },
          (res) => {
            let text = '';
            res.on('data', (chunk: Buffer) => (text += chunk.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.end(
          JSON.stringify({
            model: 'stream-gpt',
            messages: [{ role: 'user', content: 'x' }],
            stream: true,
          }),
        );
      });
      await up.waitFor(() => up.count === 1);
      const stopping = gw.gateway.shutdown();
      up.release();
      const answer = await body;
      expect(answer.status).toBe(200);
      expect(answer.text).toContain('data: [DONE]');
      await stopping;
      // The drain ended with the stream: the grace period never ran out.
      expect(gw.logText()).not.toContain('shutdown grace period over');
      expect(gw.logText()).toContain('shutdown complete');
      agent.destroy();
    } finally {
      await gw.close();
      await up.stop();
    }
  });

  it('does not report its own Redis disconnect at shutdown as a Redis outage', async () => {
    const gw = await startGateway();
    const redis = gw.gateway.app.get(RedisService);
    expect(redis.mode).toBe('redis');
    await gw.close();
    // The disconnect's events arrive after the shutdown returned: wait until they have.
    const client = (redis as unknown as { client: { status: string } }).client;
    await waitFor(() => client.status === 'end');
    await new Promise((resolve) => setImmediate(resolve));
    expect(gw.logText()).not.toContain('FALLBACK ACTIVATED');
  });

  it('closes connections still open when the grace period ends', async () => {
    const hang = await startMockUpstream('hang');
    hang.always({ mode: 'ok', content: 'late', delayMs: 20_000 });
    const file = writeProvidersFile(`
providers:
  - { name: hang, kind: openai, base_url: "${hang.url}", models: [hang-gpt], timeout_ms: 30000 }
`);
    const gw = await startGateway({
      env: { PROVIDERS_FILE: file, SHUTDOWN_GRACE_MS: '500', UPSTREAM_DEADLINE_MS: '30000' },
    });
    try {
      const { key } = await newConsumer(gw);
      const pending = fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'hang-gpt', messages: [{ role: 'user', content: 'x' }] }),
      }).then(
        (r) => r.status,
        () => 'connection closed',
      );
      await hang.waitFor(() => hang.count === 1);
      const started = Date.now();
      await gw.gateway.shutdown();
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await pending).toBe('connection closed');
      expect(gw.logText()).toContain('shutdown grace period over');
    } finally {
      await gw.close();
      await hang.stop();
    }
  });
});
