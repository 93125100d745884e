import { adminToken, newConsumer } from './support/auth-factory';
import { installAuthProbe } from './support/auth-probe';
import { startGateway, TestGateway, uniqueRedisPrefix } from './support/gateway';
import { testEnv } from './support/test-env';

installAuthProbe();

const CI = process.env.CI === 'true';
const describeWithRedis = testEnv.redisUrl || CI ? describe : describe.skip;

/** Polls until `check` holds; returns how long it took, or throws after `withinMs`. */
async function within(withinMs: number, check: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > withinMs) throw new Error(`not seen within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describeWithRedis('auth across replicas sharing Postgres and Redis', () => {
  let a: TestGateway;
  let b: TestGateway;
  let token: string;

  beforeAll(async () => {
    const prefix = uniqueRedisPrefix();
    a = await startGateway({ env: { REDIS_KEY_PREFIX: prefix } });
    b = await startGateway({ databaseUrl: a.databaseUrl, env: { REDIS_KEY_PREFIX: prefix } });
    ({ token } = await adminToken(a));
  });

  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const status = async (gw: TestGateway, key: string, route = 'chat') =>
    (await fetch(`${gw.url}/probe/${route}`, { headers: { 'x-api-key': key } })).status;

  it('a key revoked on one replica is refused by the other within 1 s', async () => {
    const c = await newConsumer(a);
    // Both replicas now hold the key in their in-process caches.
    expect(await status(a, c.key)).toBe(200);
    expect(await status(b, c.key)).toBe(200);
    const res = await fetch(`${a.url}/admin/keys/${c.keyId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    await within(1000, async () => (await status(b, c.key)) === 401);
  });

  it('a scope edit on one replica applies on the other within 1 s', async () => {
    const c = await newConsumer(a);
    expect(await status(b, c.key, 'images')).toBe(200);
    const res = await fetch(`${a.url}/admin/keys/${c.keyId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ scopes: ['chat'] }),
    });
    expect(res.status).toBe(200);
    await within(1000, async () => (await status(b, c.key, 'images')) === 403);
  });

  it('a rotation on one replica (no grace) retires the old key on the other within 1 s', async () => {
    const c = await newConsumer(a);
    expect(await status(b, c.key)).toBe(200);
    const res = await fetch(`${a.url}/admin/keys/${c.keyId}/rotate`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ grace_period_seconds: 0 }),
    });
    expect(res.status).toBe(201);
    const rotated = (await res.json()) as { key: string };
    await within(1000, async () => (await status(b, c.key)) === 401);
    expect(await status(b, rotated.key)).toBe(200);
  });

  it('a JWT issued by one replica is accepted by the other', async () => {
    const res = await fetch(`${b.url}/admin/users`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
  });
});

describe('auth in memory mode (no Redis)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ redis: false });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('revokes at once and limits logins in process memory', async () => {
    const { token } = await adminToken(gw);
    const c = await newConsumer(gw);
    expect((await fetch(`${gw.url}/probe/chat`, { headers: { 'x-api-key': c.key } })).status).toBe(
      200,
    );
    await fetch(`${gw.url}/admin/keys/${c.keyId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    expect((await fetch(`${gw.url}/probe/chat`, { headers: { 'x-api-key': c.key } })).status).toBe(
      401,
    );
    let last = 0;
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${gw.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '192.0.2.9' },
        body: JSON.stringify({ username: 'admin', password: 'wrong-password' }),
      });
      last = res.status;
    }
    expect(last).toBe(429);
  });
});
