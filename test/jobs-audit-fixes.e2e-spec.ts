import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { ApiKeysService } from '@app/auth';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway, uniqueRedisPrefix } from './support/gateway';
import { MockUpstream } from './support/mock-upstream';
import { testEnv } from './support/test-env';
import {
  balance,
  call,
  CHAT_COST,
  chatJob,
  FAST_QUEUE,
  imageJob,
  providersFile,
  waitFor,
  waitForStatus,
  WsClient,
} from './jobs-helpers';

/** A second key of the same user, so that a test can revoke one and keep using the other. */
async function secondKey(gw: TestGateway, consumer: TestConsumer): Promise<TestConsumer> {
  const issued = await gw.gateway.app
    .get(ApiKeysService)
    .create({ userId: consumer.userId, name: 'second' }, 'test');
  return { ...consumer, key: issued.key, keyId: issued.id };
}

/** The close code, or a clear failure instead of the test's own timeout. */
async function closeCode(ws: WsClient, timeoutMs = 10_000): Promise<number> {
  return waitFor(() => ws.closeCode, timeoutMs, 'the server to close the socket');
}

function cursorOf(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}

describe('jobs: audit fixes (WebSocket order and revocation, shared Idempotency-Key, cursors)', () => {
  const upstream = new MockUpstream('primary');
  const prefix = uniqueRedisPrefix();
  /** Never pings within a test: whatever closes a socket here is a delivery or a message. */
  let quiet: TestGateway;
  /** Pings every second: the heartbeat is what notices a revoked key here. */
  let pinging: TestGateway;
  let pg: Client;
  let admin: string;

  beforeAll(async () => {
    if (!testEnv.redisUrl) throw new Error('Redis is required: revocations cross replicas by it');
    await upstream.start();
    const file = providersFile(upstream.url);
    quiet = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        REDIS_KEY_PREFIX: prefix,
        WS_PING_INTERVAL_SECONDS: '3600',
        ...FAST_QUEUE,
      },
    });
    pinging = await startGateway({
      databaseUrl: quiet.databaseUrl,
      env: {
        PROVIDERS_FILE: file,
        REDIS_KEY_PREFIX: prefix,
        WS_PING_INTERVAL_SECONDS: '1',
        ...FAST_QUEUE,
      },
    });
    pg = new Client({ connectionString: quiet.databaseUrl });
    await pg.connect();
    admin = (await adminToken(quiet)).token;
  });
  afterAll(async () => {
    await pg?.end();
    await pinging?.close();
    await quiet?.close();
    await upstream.stop();
  });
  beforeEach(() => upstream.reset());

  describe('WebSocket /v1/ws', () => {
    it('handles a socket’s messages in the order they came: subscribe then unsubscribe leaves it hearing every job', async () => {
      const consumer = await newConsumer(quiet, { credits: 1000 });
      const first = await call(quiet, 'POST', '/v1/generations', consumer.key, chatJob('x'));
      expect(first.status).toBe(202);
      const x = first.body.id as string;
      await waitForStatus(quiet, consumer.key, x, ['succeeded']);

      const ws = await WsClient.for(quiet, consumer.key).ready();
      const rounds = 10;
      for (let round = 1; round <= rounds; round++) {
        ws.send({ type: 'subscribe', job_id: x });
        ws.send({ type: 'unsubscribe', job_id: x });
        ws.send({ type: 'ping' });
        await waitFor(
          () => ws.messages.filter((m) => m.type === 'pong').length === round,
          10_000,
          `pong ${round}`,
        );
      }
      const replies = ws.messages
        .filter((m) => m.type !== 'ready')
        .map((m) => (m.type === 'job' ? `job:${m.id}:${m.status}` : m.type));
      expect(replies).toEqual(
        Array.from({ length: rounds }, () => [
          'subscribed',
          `job:${x}:succeeded`,
          'unsubscribed',
          'pong',
        ]).flat(),
      );

      // No subscription left: the socket hears about all of its user's jobs again.
      const second = await call(quiet, 'POST', '/v1/generations', consumer.key, chatJob('y'));
      expect(second.status).toBe(202);
      await waitForStatus(quiet, consumer.key, second.body.id, ['succeeded']);
      await ws.next((m) => m.type === 'job' && m.id === second.body.id && m.status === 'succeeded');
      ws.close();
    });

    it('closes a socket that sends faster than it is answered with 4429', async () => {
      const consumer = await newConsumer(quiet);
      const ws = await WsClient.for(quiet, consumer.key).ready();
      // Each subscribe waits on a database read; these arrive far faster than that.
      for (let i = 0; i < 5000; i++) ws.send({ type: 'subscribe', job_id: randomUUID() });
      expect(await closeCode(ws)).toBe(4429);
      expect(ws.closeReason).toMatch(/too many/i);
      // The gateway still serves that user.
      const still = await WsClient.for(quiet, consumer.key).ready();
      still.send({ type: 'ping' });
      await still.next((m) => m.type === 'pong');
      still.close();
    });

    it('stops delivering to a socket whose key was revoked on another replica and closes it with 4401', async () => {
      const consumer = await newConsumer(quiet, { credits: 1000 });
      const other = await secondKey(quiet, consumer);
      const earlier = await call(quiet, 'POST', '/v1/generations', other.key, chatJob('before'));
      await waitForStatus(quiet, other.key, earlier.body.id, ['succeeded']);

      const listening = await WsClient.for(quiet, consumer.key).ready();
      const asking = await WsClient.for(quiet, consumer.key).ready();
      const revoked = await call(pinging, 'DELETE', `/admin/keys/${consumer.keyId}`, admin);
      expect(revoked.status).toBe(200);
      // The revocation has reached this replica's key cache (pub/sub).
      await waitFor(
        async () => (await call(quiet, 'GET', '/v1/credits', consumer.key)).status === 401,
        5_000,
        'revocation seen by the other replica',
      );

      // The earlier job's own events may still have reached both sockets before the revocation
      // (they travel through Redis after its status is written): only what follows counts.
      const heardBefore = { asking: asking.messages.length, listening: listening.messages.length };

      // A subscribe would answer the job's state, result included: nothing is answered.
      asking.send({ type: 'subscribe', job_id: earlier.body.id });
      expect(await closeCode(asking)).toBe(4401);
      expect(asking.messages.slice(heardBefore.asking)).toEqual([]);

      // Another key of the same user submits: the revoked socket hears none of it.
      const job = await call(quiet, 'POST', '/v1/generations', other.key, chatJob('after'));
      expect(job.status).toBe(202);
      await waitForStatus(quiet, other.key, job.body.id, ['succeeded']);
      expect(await closeCode(listening)).toBe(4401);
      expect(listening.messages.slice(heardBefore.listening)).toEqual([]);
      expect(listening.messages.filter((m) => m.type === 'job' && m.id === job.body.id)).toEqual(
        [],
      );
    });

    it('closes an idle socket at once when its key is revoked on another replica, with no heartbeat due', async () => {
      const consumer = await newConsumer(quiet);
      const ws = await WsClient.for(quiet, consumer.key).ready();
      const other = await secondKey(quiet, consumer);
      const bystander = await WsClient.for(quiet, other.key).ready();

      expect((await call(pinging, 'DELETE', `/admin/keys/${consumer.keyId}`, admin)).status).toBe(
        200,
      );
      // `quiet` pings once an hour: only the change itself can close the socket in time.
      expect(await closeCode(ws, 5_000)).toBe(4401);
      expect(ws.messages.map((m) => m.type)).toEqual(['ready']);
      // Another key of the same user is not touched.
      bystander.send({ type: 'ping' });
      await bystander.next((m) => m.type === 'pong');
      expect(bystander.closeCode).toBeUndefined();
      bystander.close();
    });

    it('closes an idle socket at the next heartbeat once its key is revoked or expired', async () => {
      const consumer = await newConsumer(pinging);
      const ws = await WsClient.for(pinging, consumer.key).ready();
      await ws.next((m) => m.type === 'ping'); // the heartbeat runs and the key is still good
      expect(ws.closeCode).toBeUndefined();

      expect((await call(quiet, 'DELETE', `/admin/keys/${consumer.keyId}`, admin)).status).toBe(
        200,
      );
      const revokedAt = Date.now();
      expect(await closeCode(ws)).toBe(4401);
      expect(Date.now() - revokedAt).toBeLessThan(4_000);

      const expiring = await newConsumer(pinging, { expiresAt: new Date(Date.now() + 3_000) });
      const ews = await WsClient.for(pinging, expiring.key).ready();
      expect(await closeCode(ews)).toBe(4401);
      expect(ews.messages.every((m) => m.type === 'ready' || m.type === 'ping')).toBe(true);
    });
  });

  describe('Idempotency-Key shared by the synchronous routes and POST /v1/generations', () => {
    const chatBody = chatJob('shared key').request;
    const post = (
      consumer: TestConsumer,
      path: string,
      body: unknown,
      headers: Record<string, string>,
    ) => call(quiet, 'POST', path, consumer.key, body, headers);

    async function jobsWithKey(userId: string, key: string): Promise<number> {
      const { rows } = await pg.query(
        `SELECT count(*)::int AS n FROM generation_jobs WHERE user_id = $1 AND idempotency_key = $2`,
        [userId, key],
      );
      return rows[0].n as number;
    }

    it('answers 409 to a job submit with a key a chat completion used, and charges once', async () => {
      const consumer = await newConsumer(quiet, { credits: 1000 });
      const headers = { 'idempotency-key': `cross-sync-${randomUUID()}` };
      const before = await balance(quiet, consumer.key);
      const sync = await post(consumer, '/v1/chat/completions', chatBody, headers);
      expect(sync.status).toBe(200);

      const job = await post(consumer, '/v1/generations', chatJob('shared key'), headers);
      expect(job.status).toBe(409);
      expect(job.body.error).toMatchObject({
        type: 'conflict_error',
        code: 'idempotency_conflict',
        param: 'Idempotency-Key',
      });
      expect(await jobsWithKey(consumer.userId, headers['idempotency-key'])).toBe(0);
      // The synchronous route still replays its own answer.
      const again = await post(consumer, '/v1/chat/completions', chatBody, headers);
      expect(again.status).toBe(200);
      expect(again.headers.get('idempotent-replayed')).toBe('true');
      expect(await balance(quiet, consumer.key)).toBe(before - CHAT_COST);
      expect(upstream.requests).toHaveLength(1);
    });

    it('answers 409 to a chat completion or an image with a key a job submit used, and charges once', async () => {
      const consumer = await newConsumer(quiet, { credits: 1000 });
      const headers = { 'idempotency-key': `cross-job-${randomUUID()}` };
      const before = await balance(quiet, consumer.key);
      const job = await post(consumer, '/v1/generations', chatJob('shared key'), headers);
      expect(job.status).toBe(202);
      // The same submit again still answers the first job.
      const retry = await post(consumer, '/v1/generations', chatJob('shared key'), headers);
      expect(retry.status).toBe(202);
      expect(retry.body.id).toBe(job.body.id);

      const sync = await post(consumer, '/v1/chat/completions', chatBody, headers);
      expect(sync.status).toBe(409);
      expect(sync.body.error).toMatchObject({
        code: 'idempotency_conflict',
        param: 'Idempotency-Key',
      });
      const image = await post(consumer, '/v1/images/generations', imageJob().request, headers);
      expect(image.status).toBe(409);
      expect(image.body.error.code).toBe('idempotency_conflict');

      await waitForStatus(quiet, consumer.key, job.body.id, ['succeeded']);
      expect(await balance(quiet, consumer.key)).toBe(before - CHAT_COST);
      expect(upstream.requests).toHaveLength(1);
    });

    it('lets only one of a job submit and a chat completion sent at once with one key run', async () => {
      const consumer = await newConsumer(quiet, { credits: 1000 });
      const before = await balance(quiet, consumer.key);
      const rounds = 6;
      const jobIds: string[] = [];
      for (let round = 0; round < rounds; round++) {
        const headers = { 'idempotency-key': `cross-race-${randomUUID()}` };
        const [job, sync] = await Promise.all([
          post(consumer, '/v1/generations', chatJob('shared key'), headers),
          post(consumer, '/v1/chat/completions', chatBody, headers),
        ]);
        expect([job.status, sync.status].sort()).toEqual(
          job.status === 202 ? [202, 409] : [200, 409],
        );
        const refused = job.status === 409 ? job : sync;
        expect(refused.body.error.code).toBe('idempotency_conflict');
        if (job.status === 202) jobIds.push(job.body.id);
      }
      for (const id of jobIds) await waitForStatus(quiet, consumer.key, id, ['succeeded']);
      expect(await balance(quiet, consumer.key)).toBe(before - rounds * CHAT_COST);
    });
  });

  describe('GET /admin/jobs', () => {
    it('refuses a cursor whose date Postgres cannot store as 400 invalid_cursor', async () => {
      const id = '00000000-0000-0000-0000-000000000000';
      const pageAt = (at: string) =>
        call(quiet, 'GET', `/admin/jobs?cursor=${cursorOf(`${at}|${id}`)}`, admin);
      for (const at of [
        '-271821-04-20T00:00:00.000Z',
        '+275760-09-13T00:00:00.000Z',
        '-004714-01-01T00:00:00.000Z',
      ]) {
        const res = await pageAt(at);
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({ code: 'invalid_cursor', param: 'cursor' });
      }
      // The edges of the range still reach Postgres and answer a page.
      for (const at of ['0001-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z']) {
        const res = await pageAt(at);
        expect(res.status).toBe(200);
      }
    });
  });

  describe('POST /v1/generations', () => {
    it('names an unknown model request.model, like every other error about the request', async () => {
      const consumer = await newConsumer(quiet);
      for (const type of ['chat', 'image'] as const) {
        const body = type === 'chat' ? chatJob() : imageJob();
        body.request.model = 'no-such-model';
        const res = await call(quiet, 'POST', '/v1/generations', consumer.key, body);
        expect(res.status).toBe(404);
        expect(res.body.error).toMatchObject({
          code: 'model_not_found',
          param: 'request.model',
        });
      }
    });
  });
});
