import { randomUUID } from 'node:crypto';
import Redis from 'ioredis';
import { Client } from 'pg';
import { newConsumer, TestConsumer } from './support/auth-factory';
import { createTestDatabase, dropDatabase, startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, writeProvidersFile } from './support/mock-upstream';
import { relayDatabase, TcpProxy } from './support/tcp-proxy';
import { testEnv } from './support/test-env';
import { waitFor } from './support/wait-for';

/**
 * Credits while Postgres goes away: a billable request fails fast with 503 and never reaches the
 * upstream (no free generations); a settle that fails because the database vanished mid-request
 * is retried and lands once it is back. The ledger invariant holds afterwards.
 */

/** A chat completion for the flat-priced model, as `consumer`. */
const askAs = (gw: TestGateway, consumer: TestConsumer) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'flat-gpt', messages: [{ role: 'user', content: 'hi' }] }),
  });

/** A user's balance, the sum of their ledger and its row count, straight from Postgres. */
async function booksOf(
  pg: Client,
  userId: string,
): Promise<{ balance: number; sum: number; rows: number }> {
  const { rows } = await pg.query(
    `SELECT (SELECT balance FROM user_credits WHERE user_id = $1)::int AS balance,
            (SELECT COALESCE(SUM(amount), 0) FROM credit_ledger WHERE user_id = $1)::int AS sum,
            (SELECT COUNT(*) FROM credit_ledger WHERE user_id = $1)::int AS rows`,
    [userId],
  );
  return rows[0];
}

const isReady = async (gw: TestGateway) => (await fetch(`${gw.url}/health/ready`)).status === 200;

/** One upstream, one model at a flat 10 credits per request. */
const flatPriceProviders = (upstreamUrl: string) =>
  writeProvidersFile(`
providers:
  - { name: up, kind: openai, base_url: "${upstreamUrl}", models: [flat-gpt], timeout_ms: 5000 }
pricing:
  - { model: flat-gpt, per_request: 10 }
`);

/** A gateway whose database is reached through a relay the test controls. */
interface RelayedGateway {
  up: MockUpstream;
  gw: TestGateway;
  proxy: TcpProxy;
  databaseUrl: string;
  /** A direct connection, not through the relay: for looking at the books. */
  pg: Client;
  /** 100 credits; its key is in the gateway's key cache, so it works without the database. */
  consumer: TestConsumer;
}

async function startRelayedGateway(
  upstreamName: string,
  env: Record<string, string>,
): Promise<RelayedGateway> {
  const up = await startMockUpstream(upstreamName);
  const databaseUrl = await createTestDatabase();
  const relay = await relayDatabase(databaseUrl);
  const gw = await startGateway({
    databaseUrl: relay.url,
    env: { PROVIDERS_FILE: flatPriceProviders(up.url), DB_CONNECT_TIMEOUT_MS: '500', ...env },
  });
  const pg = new Client({ connectionString: databaseUrl });
  await pg.connect();
  const consumer = await newConsumer(gw, { credits: 100 });
  expect((await askAs(gw, consumer)).status).toBe(200);
  return { up, gw, proxy: relay.proxy, databaseUrl, pg, consumer };
}

async function stopRelayedGateway(f: Partial<RelayedGateway>): Promise<void> {
  await f.pg?.end();
  await f.gw?.close();
  await f.proxy?.cut().catch(() => undefined);
  await f.up?.stop();
  if (f.databaseUrl) await dropDatabase(f.databaseUrl);
}

describe('credits when the database fails', () => {
  let up: MockUpstream;
  let gw: TestGateway;
  let proxy: TcpProxy;
  let databaseUrl: string;
  let pg: Client;
  let consumer: TestConsumer;

  const ask = () => askAs(gw, consumer);
  const books = () => booksOf(pg, consumer.userId);
  const ready = () => isReady(gw);

  beforeAll(async () => {
    ({ up, gw, proxy, databaseUrl, pg, consumer } = await startRelayedGateway(
      'faults-upstream',
      {},
    ));
  });

  afterAll(() => stopRelayedGateway({ up, gw, proxy, databaseUrl, pg }));

  beforeEach(() => up.reset());

  it('answers 503 without calling the upstream while the database is down', async () => {
    const before = await books();
    await proxy.cut();
    try {
      await waitFor(async () => !(await ready()), 20_000);
      const res = await ask();
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe('database_unavailable');
      expect(up.count).toBe(0);
    } finally {
      await proxy.restore();
    }
    expect(await books()).toEqual(before);
    // Back by itself: the first request that passes is charged once, the refused ones never.
    await waitFor(async () => (await ask()).status === 200, 20_000);
    const after = await books();
    expect(after.balance).toBe(before.balance - 10);
    expect(after.balance).toBe(after.sum);
  });

  it('settles later when the database vanished while the upstream was answering', async () => {
    const before = await books();
    up.always({ mode: 'ok', delayMs: 800 });
    const pending = ask();
    await up.waitFor(() => up.count === 1);
    await proxy.cut();
    let res: Response;
    try {
      // The answer is delivered; its settle fails and is queued for a retry.
      res = await pending;
      expect(res.status).toBe(200);
    } finally {
      await proxy.restore();
    }
    await waitFor(async () => (await books()).rows === before.rows + 2, 20_000);
    const after = await books();
    expect(after.balance).toBe(before.balance - 10);
    expect(after.balance).toBe(after.sum);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_credit_failures_total\{reason="settle_error"\} [1-9]/);
  });
});

describe('a close the database could not take before shutdown', () => {
  it('is parked in Redis and written by another replica once the database is back', async () => {
    const up = await startMockUpstream('parked-upstream');
    const file = flatPriceProviders(up.url);
    const databaseUrl = await createTestDatabase();
    const { proxy, url: viaProxy } = await relayDatabase(databaseUrl);
    // Two replicas of one deployment: the same database and the same Redis keys.
    const env = {
      PROVIDERS_FILE: file,
      DB_CONNECT_TIMEOUT_MS: '500',
      REDIS_KEY_PREFIX: `parked${Date.now()}:`,
    };
    const first = await startGateway({ databaseUrl: viaProxy, env });
    let second: TestGateway | undefined;
    const pg = new Client({ connectionString: databaseUrl });
    await pg.connect();
    try {
      const consumer = await newConsumer(first, { credits: 100 });
      const openHolds = async () =>
        (
          await pg.query(
            `SELECT count(*)::int AS n FROM credit_ledger d WHERE d.user_id = $1 AND d.event_type = 'debit'
               AND NOT EXISTS (SELECT 1 FROM credit_ledger c WHERE c.user_id = d.user_id
                                AND c.idempotency_key = 'close:' || d.id::text)`,
            [consumer.userId],
          )
        ).rows[0].n as number;

      up.always({ mode: 'ok', delayMs: 800 });
      const pending = askAs(first, consumer);
      await up.waitFor(() => up.count === 1);
      await proxy.cut();
      expect((await pending).status).toBe(200); // served; its settle fails and waits in memory
      await first.gateway.shutdown(); // ...and the database is still away
      expect(first.logText()).toContain('parked in Redis for another replica');
      expect(await openHolds()).toBe(1);

      // Entries no retry can ever write: dropped, not retried for ever or fatal to the others.
      const parkedKey = `${env.REDIS_KEY_PREFIX}credits:parked-closes`;
      const redis = new Redis(testEnv.redisUrl!);
      await redis.hset(
        parkedKey,
        'not-json',
        '{',
        randomUUID(),
        JSON.stringify({
          reservation: { id: randomUUID(), userId: consumer.userId, amount: 10, requestId: null },
          actual: 10,
          description: 'Settle',
        }),
      );

      await proxy.restore();
      second = await startGateway({ databaseUrl: viaProxy, env });
      await waitFor(() => second!.logText().includes('parked credit close written'), 20_000);
      expect(await openHolds()).toBe(0);
      await waitFor(async () => (await redis.hlen(parkedKey)) === 0, 20_000);
      expect(second.logText().match(/parked credit close dropped/g)).toHaveLength(2);
      await redis.quit();
      expect(await booksOf(pg, consumer.userId)).toMatchObject({ balance: 90, sum: 90 });
    } finally {
      await pg.end();
      await second?.close();
      await first.close();
      await proxy.cut().catch(() => undefined);
      await up.stop();
      await dropDatabase(databaseUrl);
    }
  });
});

/**
 * A credit hold whose statement was sent and never answered may or may not have been written.
 * The request fails with 503 either way, and the gateway settles the doubt by itself once the
 * database answers again: it refunds the hold if it was written, and voids its id if not (so it
 * can no longer be written late). No operator, no lost and no doubled credits.
 */

interface Row {
  id: string;
  event_type: string;
  amount: number;
  idempotency_key: string | null;
}

describe('credit holds whose write is in doubt', () => {
  let up: MockUpstream;
  let gw: TestGateway;
  let proxy: TcpProxy;
  let databaseUrl: string;
  let pg: Client;
  let consumer: TestConsumer;

  const ask = () => askAs(gw, consumer);
  /** Balance and ledger sum (the rows a settled doubt adds are checked on their own). */
  const balance = async () => {
    const { balance, sum } = await booksOf(pg, consumer.userId);
    return { balance, sum };
  };
  /** The ledger rows of one request: its hold, and what closed or voided it. */
  const rowsOf = async (requestId: string) =>
    (
      await pg.query<Row>(
        `SELECT id, event_type, amount::int AS amount, idempotency_key FROM credit_ledger
          WHERE user_id = $1 AND request_id = $2 ORDER BY created_at, id`,
        [consumer.userId, requestId],
      )
    ).rows;
  const ready = () => isReady(gw);

  beforeAll(async () => {
    // A reply not back within 1.3 s (statement timeout + 1 s) is given up on.
    ({ up, gw, proxy, databaseUrl, pg, consumer } = await startRelayedGateway('in-doubt-upstream', {
      DB_STATEMENT_TIMEOUT_MS: '300',
    }));
  });

  afterAll(() => stopRelayedGateway({ up, gw, proxy, databaseUrl, pg }));

  it('refunds a hold that was written although its reply was lost', async () => {
    const before = await balance();
    const calls = up.count;
    proxy.loseReplies();
    let requestId: string;
    try {
      const res = await ask();
      expect(res.status).toBe(503);
      expect((await res.json()).error.code).toBe('database_unavailable');
      requestId = res.headers.get('x-request-id') as string;
      // The hold reached Postgres and committed; the gateway never heard of it.
      const [hold] = await rowsOf(requestId);
      expect(hold).toMatchObject({ event_type: 'debit', amount: -10 });
      expect((await balance()).balance).toBe(before.balance - 10);
    } finally {
      proxy.keepReplies();
    }
    expect(up.count).toBe(calls);

    await waitFor(async () => (await rowsOf(requestId)).length === 2, 30_000);
    const [hold, refund] = await rowsOf(requestId);
    expect(refund).toMatchObject({
      event_type: 'refund',
      amount: 10,
      idempotency_key: `close:${hold.id}`,
    });
    expect(await balance()).toEqual(before);
    const metrics = await (await fetch(`${gw.url}/metrics`)).text();
    expect(metrics).toMatch(/gateway_credit_failures_total\{reason="hold_in_doubt"\} [1-9]/);
    await waitFor(ready, 30_000);
    expect((await ask()).status).toBe(200);
  });

  /** A request sent while the relay holds every byte: its hold is in doubt when it fails. */
  const askWhileFrozen = async (): Promise<string> => {
    proxy.freeze();
    const res = await ask();
    expect(res.status).toBe(503);
    return res.headers.get('x-request-id') as string;
  };

  it('voids the id of a hold that never reached the database', async () => {
    const before = await balance();
    let requestId: string;
    try {
      requestId = await askWhileFrozen();
    } finally {
      // The held bytes are dropped with the connections: the hold never reaches Postgres.
      await proxy.cut();
      await proxy.restore();
      proxy.thaw();
    }
    await waitFor(async () => (await rowsOf(requestId)).length > 0, 30_000);
    expect(await rowsOf(requestId)).toEqual([
      expect.objectContaining({ event_type: 'void', amount: 0, idempotency_key: null }),
    ]);
    expect(await balance()).toEqual(before);
    await waitFor(ready, 30_000);
    expect((await ask()).status).toBe(200);
    expect((await balance()).balance).toBe(before.balance - 10);
  });

  it('gives back a hold that reaches the database after the request gave up on it', async () => {
    const before = await balance();
    let requestId: string;
    try {
      requestId = await askWhileFrozen();
    } finally {
      // The held statement goes on to Postgres now, after the gateway's 503.
      proxy.thaw();
    }
    // Whichever came first, the late hold or its void, the credits are where they were.
    const settled = async () => {
      const types = (await rowsOf(requestId)).map((r) => r.event_type).join(',');
      return types === 'void' || types === 'debit,refund';
    };
    await waitFor(settled, 30_000);
    expect(await balance()).toEqual(before);
  });
});
