import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';
import { Client } from 'pg';
import { newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, writeProvidersFile } from './support/mock-upstream';
import { waitFor } from './support/wait-for';

/**
 * Streams, image generations and HTTP edges as a client meets them: clients that leave early,
 * upstream answers the gateway cannot use, request bodies in encodings it does not read.
 * (Shutdown with a stream in flight: shutdown.e2e-spec.ts.)
 */
describe('streams and HTTP edges', () => {
  let gw: TestGateway;
  let up: MockUpstream;
  let pg: Client;
  let consumer: TestConsumer;

  beforeAll(async () => {
    up = await startMockUpstream('edges');
    const file = writeProvidersFile(`
providers:
  - name: edges
    kind: openai
    base_url: ${up.url}
    models: [edge-gpt, edge-image]
    timeout_ms: 5000
pricing:
  - { model: edge-gpt, per_request: 1, per_1k_prompt_tokens: 1000, per_1k_completion_tokens: 1000 }
  - { model: edge-image, per_image: 40 }
`);
    // Invalid answers and cut streams would open the breaker across tests.
    gw = await startGateway({ env: { PROVIDERS_FILE: file, CB_FAILURE_THRESHOLD: '1000' } });
    consumer = await newConsumer(gw, { credits: 1_000_000 });
    pg = new Client({ connectionString: gw.databaseUrl });
    await pg.connect();
  });

  afterAll(async () => {
    await pg?.end();
    await gw?.close();
    await up?.stop();
  });

  beforeEach(() => up.reset());

  /** Sends a request and destroys the connection once `leaveWhen` says so (or at the answer). */
  function leaveEarly(
    path: string,
    body: unknown,
    requestId: string,
    leaveWhen: (received: string) => boolean,
  ): Promise<string> {
    return new Promise((resolve, reject) => {
      let received = '';
      const req = httpRequest(
        `${gw.url}${path}`,
        {
          method: 'POST',
          headers: {
            authorization: `Bearer ${consumer.key}`,
            'content-type': 'application/json',
            'x-request-id': requestId,
          },
        },
        (res) => {
          res.on('data', (chunk: Buffer) => {
            received += chunk.toString();
            if (leaveWhen(received)) req.destroy();
          });
          res.on('close', () => resolve(received));
        },
      );
      req.on('error', () => resolve(received));
      req.on('close', () => resolve(received));
      req.end(JSON.stringify(body));
      up.waitFor(() => up.count === 1).then(() => {
        if (leaveWhen(received)) req.destroy();
      }, reject);
    });
  }

  async function logRow(requestId: string) {
    return waitFor(
      async () =>
        (
          await pg.query(
            `SELECT status_code, credits, error, completion_tokens FROM request_logs
              WHERE request_id = $1`,
            [requestId],
          )
        ).rows[0] as
          | { status_code: number; credits: string; error: string; completion_tokens: number }
          | undefined,
      15_000,
      `request_logs row of ${requestId}`,
    );
  }

  async function netCharge(requestId: string): Promise<number> {
    const { rows } = await pg.query(
      `SELECT coalesce(-sum(amount), 0)::int AS charged FROM credit_ledger WHERE request_id = $1`,
      [requestId],
    );
    return rows[0].charged as number;
  }

  describe('request encodings', () => {
    const chat = JSON.stringify({ model: 'edge-gpt', messages: [{ role: 'user', content: 'x' }] });
    const post = (body: string | Buffer, headers: Record<string, string>) =>
      fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${consumer.key}`,
          'content-type': 'application/json',
          ...headers,
        },
        body,
      });

    it('refuses a compressed body with 415 instead of misreading it', async () => {
      for (const [encoding, body] of [
        ['gzip', gzipSync(chat)],
        ['br', chat], // taken as uncompressed before
        ['GZIP, identity', gzipSync(chat)],
      ] as const) {
        const res = await post(body, { 'content-encoding': encoding });
        const json = (await res.json()) as { error: { code: string; param: string } };
        expect([encoding, res.status, json.error.code, json.error.param]).toEqual([
          encoding,
          415,
          'unsupported_media_type',
          'content-encoding',
        ]);
      }
      expect(up.count).toBe(0);
      const plain = await post(chat, { 'content-encoding': 'identity' });
      expect(plain.status).toBe(200);
    });

    it('answers a JSON body sent as text/plain or as a form (no content type given) with 415', async () => {
      for (const type of [
        'text/plain',
        'text/plain;charset=UTF-8',
        'application/x-www-form-urlencoded', // curl -d without -H
      ]) {
        const res = await post(chat, { 'content-type': type });
        const json = (await res.json()) as { error: { code: string } };
        expect([type, res.status, json.error.code]).toEqual([type, 415, 'unsupported_media_type']);
      }
      expect(up.count).toBe(0);
      const plain = await post(chat, {});
      expect(plain.status).toBe(200);
    });
  });

  it('ends a stream the upstream cut with an error event in the envelope, request_id included', async () => {
    up.always({ mode: 'cut', afterChunks: 2, chunkDelayMs: 20 });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${consumer.key}`,
        'content-type': 'application/json',
        'x-request-id': 'edges-cut-stream',
      },
      body: JSON.stringify({
        model: 'edge-gpt',
        messages: [{ role: 'user', content: 'x' }],
        stream: true,
      }),
    });
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: '));
    expect(JSON.parse(events.at(-1)!.slice('data: '.length))).toEqual({
      error: {
        message: expect.any(String),
        type: 'upstream_error',
        code: 'stream_interrupted',
        param: null,
        request_id: 'edges-cut-stream',
      },
    });
  });

  describe('image generations', () => {
    const generate = async (body: Record<string, unknown>, requestId: string) => {
      const res = await fetch(`${gw.url}/v1/images/generations`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${consumer.key}`,
          'content-type': 'application/json',
          'x-request-id': requestId,
        },
        body: JSON.stringify({ model: 'edge-image', prompt: 'a lighthouse', ...body }),
      });
      const json = (await res.json()) as { data?: unknown[]; error?: { code: string } };
      return { status: res.status, json };
    };
    const images = (entries: unknown[]) => JSON.stringify({ created: 1, data: entries });

    it('refuses an answer without images, or with entries that are no images, and refunds', async () => {
      for (const [i, body] of [
        images([]),
        images([1, null, 'x']),
        images([{ url: 'https://images.test/0.png' }, { revised_prompt: 'no image' }]),
        images([{ url: '' }]),
      ].entries()) {
        up.next({ mode: 'raw', body });
        const res = await generate({ n: 2 }, `edges-bad-images-${i}`);
        expect([body, res.status, res.json.error?.code]).toEqual([body, 502, 'upstream_error']);
        expect(await netCharge(`edges-bad-images-${i}`)).toBe(0);
      }
    });

    it('bills the images delivered, never more than the n asked for', async () => {
      const url = (i: number) => ({ url: `https://images.test/${i}.png` });
      up.next({ mode: 'raw', body: images([url(0)]) });
      const fewer = await generate({ n: 3 }, 'edges-fewer-images');
      expect(fewer.status).toBe(200);
      expect(await netCharge('edges-fewer-images')).toBe(40);
      up.next({ mode: 'raw', body: images([0, 1, 2, 3, 4, 5, 6].map(url)) });
      const more = await generate({ n: 1 }, 'edges-more-images');
      expect(more.status).toBe(200);
      expect(more.json.data).toHaveLength(7);
      expect(await netCharge('edges-more-images')).toBe(40);
    });
  });

  describe('a client that leaves before the answer is complete', () => {
    it('logs a stream cut by its client with what it was charged', async () => {
      up.always({ mode: 'ok', content: 'abcdefghijklmnop', chunks: 4, holdAfter: 2 });
      const received = await leaveEarly(
        '/v1/chat/completions',
        { model: 'edge-gpt', messages: [{ role: 'user', content: 'x' }], stream: true },
        'edges-left-stream',
        (text) => text.includes('efgh'),
      );
      expect(received).toContain('abcd');
      await up.waitFor(() => up.requests[0]?.aborted === true);
      const row = await logRow('edges-left-stream');
      // The headers (200) went out with the first chunk; the tokens delivered are billed.
      expect(row.status_code).toBe(200);
      expect(row.error).toBe('client_closed');
      expect(row.completion_tokens).toBeGreaterThan(0);
      const charged = await netCharge('edges-left-stream');
      expect(charged).toBeGreaterThan(0);
      expect(Number(row.credits)).toBe(charged);
    });

    it('logs a non-streamed request abandoned while the upstream works as 499, charged nothing', async () => {
      up.always({ mode: 'hang' });
      await leaveEarly(
        '/v1/chat/completions',
        { model: 'edge-gpt', messages: [{ role: 'user', content: 'x' }] },
        'edges-left-json',
        () => up.count === 1,
      );
      const row = await logRow('edges-left-json');
      expect(row.status_code).toBe(499);
      expect(row.error).toBe('client_closed_request');
      expect(Number(row.credits)).toBe(0);
      expect(await netCharge('edges-left-json')).toBe(0);
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(
        /http_requests_total\{method="POST",route="\/v1\/chat\/completions",status="499"\} [1-9]/,
      );
    });

    it('charges nothing and leaves the upstream alone when the client left while the request was admitted', async () => {
      up.always({ mode: 'ok', delayMs: 300 });
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        // A key's first use is checked in the database: the client is gone by then.
        const fresh = await newConsumer(gw, { credits: 1_000_000 });
        const id = `edges-left-at-once-${i}`;
        ids.push(id);
        const body = JSON.stringify({
          model: 'edge-gpt',
          messages: [{ role: 'user', content: 'x' }],
        });
        await new Promise<void>((resolve) => {
          const socket = connect(Number(new URL(gw.url).port), '127.0.0.1', () =>
            socket.write(
              `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${fresh.key}\r\n` +
                `content-type: application/json\r\nx-request-id: ${id}\r\n` +
                `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
              () => socket.destroy(),
            ),
          );
          socket.on('close', () => resolve());
        });
      }
      for (const id of ids) {
        const row = await logRow(id);
        // Logged once the handler gave up, with what it knew (not at the moment the client left).
        expect([id, row.status_code, Number(row.credits), row.error]).toEqual([
          id,
          499,
          0,
          'client_closed_request',
        ]);
        expect([id, await netCharge(id)]).toEqual([id, 0]);
      }
      // None was answered upstream: never called, or called and cancelled at once.
      await up.waitFor(() => up.requests.every((r) => r.aborted));
    });

    it('logs an abandoned image generation as 499', async () => {
      up.always({ mode: 'hang' });
      await leaveEarly(
        '/v1/images/generations',
        { model: 'edge-image', prompt: 'a lighthouse', n: 2 },
        'edges-left-image',
        () => up.count === 1,
      );
      const row = await logRow('edges-left-image');
      expect(row.status_code).toBe(499);
      expect(await netCharge('edges-left-image')).toBe(0);
    });
  });
});
