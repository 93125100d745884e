import { Client } from 'pg';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream } from './support/mock-upstream';
import { rawRequest } from './faults/harness';
import {
  balance,
  call,
  CHAT_COST,
  CHAT_MODEL,
  chatJob,
  FAST_QUEUE,
  IMAGE_COST,
  imageJob,
  metric,
  metricsText,
  providersFile,
  waitFor,
  waitForStatus,
  WsClient,
} from './jobs-helpers';

describe('async generation jobs over HTTP and WebSocket', () => {
  const upstream = new MockUpstream('primary');
  let gw: TestGateway;
  let pg: Client;
  let alice: TestConsumer;
  let bob: TestConsumer;
  let admin: string;

  beforeAll(async () => {
    await upstream.start();
    gw = await startGateway({
      env: {
        PROVIDERS_FILE: providersFile(upstream.url),
        WS_PING_INTERVAL_SECONDS: '1',
        ...FAST_QUEUE,
      },
    });
    pg = new Client({ connectionString: gw.databaseUrl });
    await pg.connect();
    alice = await newConsumer(gw, { credits: 1000 });
    bob = await newConsumer(gw, { credits: 1000 });
    admin = (await adminToken(gw)).token;
  });
  afterAll(async () => {
    await pg?.end();
    await gw?.close();
    await upstream.stop();
  });
  beforeEach(() => upstream.reset());

  it('refuses a request it could not store before holding anything', async () => {
    const before = await balance(gw, alice.key);
    const { rows: ledgerBefore } = await pg.query(
      `SELECT count(*)::int AS n FROM credit_ledger WHERE user_id = $1`,
      [alice.userId],
    );
    for (const content of ['nul\u0000', 'lone \ud800']) {
      const refused = await call(gw, 'POST', '/v1/generations', alice.key, {
        type: 'chat',
        request: { model: CHAT_MODEL, messages: [{ role: 'user', content }] },
      });
      expect(refused.status).toBe(400);
      expect(refused.body.error).toMatchObject({
        code: 'invalid_value',
        param: 'request.messages[0].content',
      });
    }
    expect(await balance(gw, alice.key)).toBe(before);
    const { rows: ledgerAfter } = await pg.query(
      `SELECT count(*)::int AS n FROM credit_ledger WHERE user_id = $1`,
      [alice.userId],
    );
    expect(ledgerAfter[0].n).toBe(ledgerBefore[0].n); // no hold and refund pair either
  });

  it('runs a chat job: 202 pending, then every transition over the WebSocket, result over GET, charged once', async () => {
    const ws = await WsClient.for(gw, alice.key).ready();
    const before = await balance(gw, alice.key);

    const submitted = await call(gw, 'POST', '/v1/generations', alice.key, chatJob());
    expect(submitted.status).toBe(202);
    expect(submitted.body).toMatchObject({ status: 'pending', type: 'chat' });
    const id = submitted.body.id;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);

    const done = await waitForStatus(gw, alice.key, id, ['succeeded']);
    expect(done.result.object).toBe('chat.completion');
    expect(done.result.choices[0].message.content).toEqual(expect.any(String));
    expect(done.credits_charged).toBe(CHAT_COST);
    expect(done.attempts).toBe(1);
    expect(done.error).toBeNull();

    await ws.next((m) => m.type === 'job' && m.id === id && m.status === 'succeeded');
    const statuses = ws.jobEvents(id).map((m) => m.status);
    expect(statuses).toEqual(['pending', 'generating', 'succeeded']);
    const final = ws.jobEvents(id)[2];
    expect(final.result).toEqual(done.result);
    expect(Object.keys(final).sort()).toEqual(['id', 'result', 'status', 'type']);
    ws.close();

    expect(upstream.count).toBe(1);
    expect(await balance(gw, alice.key)).toBe(before - CHAT_COST);
    const ledger = await pg.query(
      `SELECT event_type, amount FROM credit_ledger WHERE user_id = $1 AND request_id = $2 ORDER BY created_at`,
      [alice.userId, submitted.headers.get('x-request-id')],
    );
    expect(ledger.rows.map((r) => r.event_type)).toEqual(['debit', 'settle']);
    expect(ledger.rows.reduce((sum, r) => sum + Number(r.amount), 0)).toBe(-CHAT_COST);
  });

  it('runs an image job through the same generation path', async () => {
    const before = await balance(gw, alice.key);
    const submitted = await call(gw, 'POST', '/v1/generations', alice.key, imageJob());
    expect(submitted.status).toBe(202);
    const done = await waitForStatus(gw, alice.key, submitted.body.id, ['succeeded']);
    expect(done.type).toBe('image');
    expect(done.result.data).toHaveLength(1);
    expect(done.credits_charged).toBe(IMAGE_COST);
    expect(upstream.requests[0].path).toMatch(/\/images\/generations$/);
    expect(await balance(gw, alice.key)).toBe(before - IMAGE_COST);
  });

  it('fails a job whose upstream fails, with the error and a full refund', async () => {
    upstream.always({ mode: 'status', status: 400, message: 'bad prompt' });
    const before = await balance(gw, alice.key);
    const submitted = await call(gw, 'POST', '/v1/generations', alice.key, chatJob());
    const failed = await waitForStatus(gw, alice.key, submitted.body.id, ['failed']);
    expect(failed.error).toEqual(expect.any(String));
    expect(failed.result).toBeNull();
    expect(failed.credits_charged).toBe(0);
    await waitFor(async () => (await balance(gw, alice.key)) === before, 5000, 'refund');
  });

  it('cancels a running job: upstream call aborted, refunded, cancelled over the WebSocket', async () => {
    upstream.always({ mode: 'ok', delayMs: 5_000 });
    const before = await balance(gw, alice.key);
    const ws = await WsClient.for(gw, alice.key).ready();
    const submitted = await call(gw, 'POST', '/v1/generations', alice.key, chatJob());
    const id = submitted.body.id;
    await waitForStatus(gw, alice.key, id, ['generating']);
    await upstream.waitFor(() => upstream.count === 1);
    expect(await balance(gw, alice.key)).toBeLessThan(before);

    const cancelled = await call(gw, 'DELETE', `/v1/generations/${id}`, alice.key);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ id, status: 'cancelled', credits_charged: 0 });
    await ws.next((m) => m.type === 'job' && m.id === id && m.status === 'cancelled');
    await upstream.waitFor(() => upstream.aborted === 1);
    expect(await balance(gw, alice.key)).toBe(before);

    // DELETE is idempotent on a cancelled job; the job stays cancelled.
    const again = await call(gw, 'DELETE', `/v1/generations/${id}`, alice.key);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 500));
    expect((await call(gw, 'GET', `/v1/generations/${id}`, alice.key)).body.status).toBe(
      'cancelled',
    );
    ws.close();
  });

  it('refuses to cancel a finished job with 409', async () => {
    const submitted = await call(gw, 'POST', '/v1/generations', alice.key, chatJob());
    await waitForStatus(gw, alice.key, submitted.body.id, ['succeeded']);
    const res = await call(gw, 'DELETE', `/v1/generations/${submitted.body.id}`, alice.key);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('job_not_cancellable');
  });

  it("hides another user's job (404) and rejects a malformed id (400)", async () => {
    const submitted = await call(gw, 'POST', '/v1/generations', alice.key, chatJob());
    const id = submitted.body.id;
    for (const method of ['GET', 'DELETE']) {
      const other = await call(gw, method, `/v1/generations/${id}`, bob.key);
      expect(other.status).toBe(404);
      expect(other.body.error.code).toBe('job_not_found');
      const unknown = await call(
        gw,
        method,
        '/v1/generations/00000000-0000-4000-8000-000000000000',
        alice.key,
      );
      expect(unknown.status).toBe(404);
      const malformed = await call(gw, method, '/v1/generations/not-a-uuid', alice.key);
      expect(malformed.status).toBe(400);
      expect(malformed.body.error.param).toBe('id');
    }
    await waitForStatus(gw, alice.key, id, ['succeeded']);
  });

  it('validates the submit before anything is queued or charged', async () => {
    const before = await balance(gw, alice.key);
    const cases: [unknown, number, string | null][] = [
      [{ type: 'video', request: { model: 'gpt-4o-mini' } }, 400, 'type'],
      [{ type: 'chat' }, 400, 'request'],
      [{ type: 'chat', request: { messages: [] } }, 400, 'request.model'],
      [{ type: 'chat', request: { model: 'gpt-4o-mini' } }, 400, 'request.messages'],
      [{ type: 'chat', request: { model: 'gpt-4o-mini', messages: [], bogus: 1 } }, 400, null],
      [
        {
          type: 'chat',
          request: { model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] },
        },
        404,
        'request.model',
      ],
      [{ ...chatJob(), request: { ...chatJob().request, stream: true } }, 400, 'request.stream'],
      ['not an object', 400, null],
    ];
    for (const [body, status, param] of cases) {
      const res = await call(gw, 'POST', '/v1/generations', alice.key, body);
      expect({ body, status: res.status }).toEqual({ body, status });
      expect(res.body.error).toEqual(
        expect.objectContaining({ type: expect.any(String), code: expect.any(String) }),
      );
      if (param !== null) expect(res.body.error.param).toBe(param);
    }
    const count = await pg.query(
      `SELECT count(*)::int AS n FROM generation_jobs WHERE user_id = $1 AND status = 'pending'`,
      [alice.userId],
    );
    expect(count.rows[0].n).toBe(0);
    expect(await balance(gw, alice.key)).toBe(before);
  });

  it('answers 402 when the balance cannot cover the job, 401 without a key, 403 without the jobs scope', async () => {
    const poor = await newConsumer(gw, { credits: 1 });
    const res = await call(gw, 'POST', '/v1/generations', poor.key, imageJob());
    expect(res.status).toBe(402);
    expect(res.body.error.code).toBe('insufficient_credits');
    expect((await call(gw, 'POST', '/v1/generations', undefined, chatJob())).status).toBe(401);
    const chatOnly = await newConsumer(gw, { scopes: ['chat'] });
    const forbidden = await call(gw, 'POST', '/v1/generations', chatOnly.key, chatJob());
    expect(forbidden.status).toBe(403);
    // An admin JWT never pays for generations.
    expect((await call(gw, 'POST', '/v1/generations', admin, chatJob())).status).toBe(401);
  });

  it('makes a retried submit with the same Idempotency-Key answer the first job', async () => {
    const before = await balance(gw, alice.key);
    const headers = { 'idempotency-key': `job-${Date.now()}` };
    const first = await call(gw, 'POST', '/v1/generations', alice.key, chatJob('idem'), headers);
    const second = await call(gw, 'POST', '/v1/generations', alice.key, chatJob('idem'), headers);
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.body.id).toBe(first.body.id);
    const conflict = await call(
      gw,
      'POST',
      '/v1/generations',
      alice.key,
      chatJob('other'),
      headers,
    );
    expect(conflict.status).toBe(409);
    expect(conflict.body.error.code).toBe('idempotency_conflict');
    await waitForStatus(gw, alice.key, first.body.id, ['succeeded']);
    expect(await balance(gw, alice.key)).toBe(before - CHAT_COST);
  });

  describe('WebSocket /v1/ws', () => {
    it('closes an unauthenticated socket with 4401 and tells it nothing', async () => {
      const bad = WsClient.for(gw, 'sk-sy-not-a-real-key');
      expect(await bad.closed).toBe(4401);
      expect(bad.messages).toEqual([]);

      const silent = WsClient.for(gw);
      await silent.opened;
      silent.send({ type: 'subscribe', job_id: '00000000-0000-4000-8000-000000000000' });
      expect(await silent.closed).toBe(4401);
      expect(silent.messages).toEqual([]);

      const wrongFirst = WsClient.for(gw);
      await wrongFirst.opened;
      wrongFirst.send({ type: 'auth', api_key: 'sk-sy-wrong' });
      expect(await wrongFirst.closed).toBe(4401);
      expect(wrongFirst.messages).toEqual([]);

      const jwt = WsClient.for(gw, admin);
      expect(await jwt.closed).toBe(4401);
    });

    it('closes a socket that never authenticates after a few seconds', async () => {
      const idle = WsClient.for(gw);
      await idle.opened;
      expect(await idle.closed).toBe(4401);
      expect(idle.messages).toEqual([]);
    });

    it('answers other upgrade requests as plain HTTP, on a connection that stays open', async () => {
      // Node hands every request with `Upgrade` to the upgrade listener: an h2c upgrade (curl
      // --http2, Java's HttpClient) or a stray header must still reach the API, body and all.
      const before = await balance(gw, alice.key);
      const chat = JSON.stringify({
        model: CHAT_MODEL,
        messages: [{ role: 'user', content: 'upgrade please' }],
      });
      const auth = `Host: gw\r\nAuthorization: Bearer ${alice.key}\r\n`;
      // One request after the other on one connection (a gap apart), as clients send them.
      const reply = await rawRequest(
        gw.url,
        [
          `GET /v1/models HTTP/1.1\r\n${auth}Connection: Upgrade, HTTP2-Settings\r\n` +
            'Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n',
          `POST /v1/chat/completions HTTP/1.1\r\n${auth}Content-Type: application/json\r\n` +
            `Content-Length: ${Buffer.byteLength(chat)}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n` +
            chat,
          'GET /v1/nope HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n',
        ],
        { gapMs: 300 },
      );
      const text = `${reply.head}\r\n\r\n${reply.body}`;
      expect([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([
        200, 200, 404,
      ]);
      expect(text).toContain('"object":"list"');
      expect(text).toContain('"object":"chat.completion"');
      expect(text).toMatch(/"code":"not_found"/);
      expect(text).not.toContain('HTTP/1.1 101');
      expect(await balance(gw, alice.key)).toBe(before - CHAT_COST);
    });

    it('answers an upgrade request pipelined behind another one, and the ones after it', async () => {
      const auth = `Host: gw\r\nAuthorization: Bearer ${alice.key}\r\n`;
      const reply = await rawRequest(gw.url, [
        'GET /health/live HTTP/1.1\r\nHost: gw\r\n\r\n' +
          `GET /v1/models HTTP/1.1\r\n${auth}Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n` +
          'GET /nope HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n' +
          'GET /v1/nope HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n',
      ]);
      const text = `${reply.head}\r\n\r\n${reply.body}`;
      expect([...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]))).toEqual([
        200, 200, 404, 404,
      ]);
      expect(text).toContain('"object":"list"');
    });

    it('survives an upgrade request whose target is not a URL', async () => {
      for (const target of ['//[', 'http://[::1', 'http://:99999/']) {
        const reply = await rawRequest(gw.url, [
          `GET ${target} HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
            'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
            'Connection: close\r\n\r\n',
        ]);
        expect(reply.status).toBeGreaterThanOrEqual(400);
        expect(reply.status).toBeLessThan(500);
        expect(JSON.parse(reply.body).error).toMatchObject({ type: expect.any(String) });
      }
      expect((await fetch(`${gw.url}/health/live`)).status).toBe(200);
    });

    it('authenticates with ?api_key= and with a first auth message', async () => {
      const byQuery = await WsClient.for(gw, undefined, `?api_key=${alice.key}`).ready();
      const byMessage = WsClient.for(gw);
      await byMessage.opened;
      byMessage.send({ type: 'auth', api_key: alice.key });
      await byMessage.next((m) => m.type === 'ready');
      const submitted = await call(gw, 'POST', '/v1/generations', alice.key, chatJob());
      for (const ws of [byQuery, byMessage]) {
        await ws.next((m) => m.id === submitted.body.id && m.status === 'succeeded');
        ws.close();
      }
    });

    it('delivers only subscribed jobs once subscribed, and only the user’s own jobs', async () => {
      const mine = await WsClient.for(gw, alice.key).ready();
      const theirs = await WsClient.for(gw, bob.key).ready();
      const first = await call(gw, 'POST', '/v1/generations', alice.key, chatJob('one'));
      await waitForStatus(gw, alice.key, first.body.id, ['succeeded']);

      // A late subscriber gets the current state at once.
      mine.send({ type: 'subscribe', job_id: first.body.id });
      await mine.next((m) => m.type === 'subscribed' && m.job_id === first.body.id);
      await mine.next(
        (m) => m.type === 'job' && m.id === first.body.id && m.status === 'succeeded',
      );
      const second = await call(gw, 'POST', '/v1/generations', alice.key, chatJob('two'));
      await waitForStatus(gw, alice.key, second.body.id, ['succeeded']);

      // Bob subscribing to Alice's job learns nothing about it.
      theirs.send({ type: 'subscribe', job_id: first.body.id });
      await theirs.next((m) => m.type === 'error' && m.code === 'job_not_found');
      theirs.send({ type: 'subscribe', job_id: 'nope' });
      await theirs.next((m) => m.type === 'error' && m.code === 'invalid_id');
      await new Promise((r) => setTimeout(r, 500));
      expect(mine.jobEvents(second.body.id)).toEqual([]);
      expect(theirs.jobEvents()).toEqual([]);
      mine.close();
      theirs.close();
    });

    it('sends a ping every WS_PING_INTERVAL_SECONDS', async () => {
      const ws = await WsClient.for(gw, alice.key).ready();
      await ws.next((m) => m.type === 'ping', 5000);
      ws.close();
    });

    it('answers 404 to a WebSocket handshake on another path', async () => {
      const other = new WsClient(`${gw.url.replace('http', 'ws')}/v1/not-ws`);
      await expect(other.opened).rejects.toThrow(/404/);
    });
  });

  describe('admin', () => {
    it('lists jobs by status with cursor pagination', async () => {
      const first = await call(gw, 'GET', '/admin/jobs?status=succeeded&limit=2', admin);
      expect(first.status).toBe(200);
      expect(first.body.data).toHaveLength(2);
      for (const job of first.body.data) {
        expect(job.status).toBe('succeeded');
        expect(job).toEqual(
          expect.objectContaining({ id: expect.any(String), user_id: expect.any(String) }),
        );
        expect(job).not.toHaveProperty('result');
      }
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await call(
        gw,
        'GET',
        `/admin/jobs?status=succeeded&limit=2&cursor=${first.body.next_cursor}`,
        admin,
      );
      const ids = [...first.body.data, ...second.body.data].map((j: { id: string }) => j.id);
      expect(new Set(ids).size).toBe(ids.length);
      const all = await pg.query(
        `SELECT count(*)::int AS n FROM generation_jobs WHERE status = 'succeeded'`,
      );
      expect(ids.length).toBe(Math.min(4, all.rows[0].n));

      const one = await call(gw, 'GET', `/admin/jobs/${ids[0]}`, admin);
      expect(one.status).toBe(200);
      expect(one.body.result).toEqual(expect.any(Object));

      expect((await call(gw, 'GET', '/admin/jobs?status=bogus', admin)).status).toBe(400);
      expect((await call(gw, 'GET', '/admin/jobs?cursor=%%%', admin)).status).toBe(400);
      expect((await call(gw, 'GET', '/admin/jobs', alice.key)).status).toBe(401);
    });

    it('reports the queue in /health/detailed and in metrics', async () => {
      const health = await call(gw, 'GET', '/health/detailed');
      const queue = health.body.components.find((c: { name: string }) => c.name === 'job queue');
      expect(queue).toEqual(
        expect.objectContaining({
          status: 'up',
          details: expect.objectContaining({ queue: 'running', workers: 4, pending: 0 }),
        }),
      );
      const text = await metricsText(gw);
      expect(
        metric(text, 'gateway_generation_jobs_total', { type: 'chat', outcome: 'succeeded' }),
      ).toBeGreaterThan(0);
      expect(
        metric(text, 'gateway_generation_jobs_total', { type: 'chat', outcome: 'cancelled' }),
      ).toBeGreaterThan(0);
      expect(text).toMatch(/gateway_generation_queue_depth\{status="pending"\} \d+/);
      expect(text).toMatch(/gateway_generation_queue_depth\{status="generating"\} \d+/);
    });
  });
});

describe('async jobs without Redis (single process)', () => {
  const upstream = new MockUpstream('primary');
  let gw: TestGateway;

  beforeAll(async () => {
    await upstream.start();
    gw = await startGateway({
      redis: false,
      env: { PROVIDERS_FILE: providersFile(upstream.url), ...FAST_QUEUE },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await upstream.stop();
  });

  it('runs the job and delivers its events to the WebSocket in process', async () => {
    const consumer = await newConsumer(gw, { credits: 100 });
    const ws = await WsClient.for(gw, consumer.key).ready();
    const submitted = await call(gw, 'POST', '/v1/generations', consumer.key, chatJob());
    expect(submitted.status).toBe(202);
    await ws.next((m) => m.id === submitted.body.id && m.status === 'succeeded');
    expect(ws.jobEvents(submitted.body.id).map((m) => m.status)).toEqual([
      'pending',
      'generating',
      'succeeded',
    ]);
    expect(await balance(gw, consumer.key)).toBe(100 - CHAT_COST);
    ws.close();
  });
});
