import Redis from 'ioredis';
import { adminToken, newConsumer } from './support/auth-factory';
import { installAuthProbe } from './support/auth-probe';
import {
  createTestDatabase,
  dropDatabase,
  startGateway,
  TestGateway,
  uniqueRedisPrefix,
} from './support/gateway';
import { RedisServer, startRedisServer } from './support/redis-server';
import { waitFor } from './support/wait-for';

installAuthProbe();

/** The ids of the connections that are subscribed to something (CLIENT LIST's `cmd`). */
async function subscriberIds(admin: Redis): Promise<string[]> {
  const list = (await admin.client('LIST')) as string;
  return list
    .split('\n')
    .filter((line) => /\bcmd=p?subscribe\b/.test(line))
    .map((line) => /\bid=(\d+)/.exec(line)![1]);
}

/**
 * Two replicas on one database and a private redis-server. Replica B's subscriber connection is
 * killed on its own (its main connection stays up, so nothing else tells B that pub/sub messages
 * were lost); a key revoked on A in that window must still be refused by B within the promise.
 */
describe('api key revocation when a replica lost its pub/sub connection', () => {
  let redis: RedisServer;
  let admin: Redis;
  let databaseUrl: string;
  let a: TestGateway;
  let b: TestGateway;
  let bSubscriber: string;
  let token: string;

  beforeAll(async () => {
    redis = await startRedisServer();
    admin = new Redis(redis.url);
    databaseUrl = await createTestDatabase();
    const env = { REDIS_KEY_PREFIX: uniqueRedisPrefix() };
    // B first, so that the only subscriber connection at that point is B's.
    b = await startGateway({ databaseUrl, redis: redis.url, env });
    [bSubscriber] = await waitFor(
      async () => {
        const ids = await subscriberIds(admin);
        return ids.length === 1 && ids;
      },
      5000,
      "B's subscriber connection",
    );
    a = await startGateway({ databaseUrl, redis: redis.url, env });
    ({ token } = await adminToken(a));
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
    admin?.disconnect();
    await redis?.stop();
    if (databaseUrl) await dropDatabase(databaseUrl).catch(() => undefined);
  });

  const status = async (gw: TestGateway, key: string) =>
    (await fetch(`${gw.url}/probe/chat`, { headers: { 'x-api-key': key } })).status;

  it('rejects a key revoked while the other replica resubscribes within 2 s', async () => {
    const c = await newConsumer(a);
    expect(await status(a, c.key)).toBe(200);
    // B now holds the key in its in-process cache.
    expect(await status(b, c.key)).toBe(200);

    await admin.client('KILL', 'ID', bSubscriber);
    const res = await fetch(`${a.url}/admin/keys/${c.keyId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const revokedAt = Date.now();
    expect(await status(a, c.key)).toBe(401);

    // The revocation was published while B had no subscription: only the gap notice helps.
    await waitFor(async () => (await status(b, c.key)) === 401, 2000, 'B refusing the key');
    expect(Date.now() - revokedAt).toBeLessThan(2000);
    // B subscribed again (a new connection) and hears later changes as before.
    await waitFor(
      async () => (await subscriberIds(admin)).filter((id) => id !== bSubscriber).length === 2,
      2000,
      "B's new subscriber connection",
    );
    const later = await newConsumer(a);
    expect(await status(b, later.key)).toBe(200);
    await fetch(`${a.url}/admin/keys/${later.keyId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    await waitFor(async () => (await status(b, later.key)) === 401, 1000, 'B refusing a later key');
  });
});
