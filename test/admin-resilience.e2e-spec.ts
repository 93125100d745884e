import { adminToken, newConsumer } from './support/auth-factory';
import { startGateway, TestGateway } from './support/gateway';
import { startRedisServer } from './support/redis-server';

async function resilience(gw: TestGateway, token: string) {
  const res = await fetch(`${gw.url}/admin/resilience`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(200);
  return res.json();
}

describe('GET /admin/resilience', () => {
  it('shows breakers, sessions, queue, Redis mode and the database pool; admins only', async () => {
    const redis = await startRedisServer();
    const gw = await startGateway({ redis: redis.url });
    try {
      const { token } = await adminToken(gw);
      const body = await resilience(gw, token);
      expect(body.unavailable).toEqual([]);
      expect(Array.isArray(body.breakers)).toBe(true);
      expect(body.breakers.length).toBeGreaterThan(0);
      expect(body.breakers[0]).toEqual(
        expect.objectContaining({ name: expect.any(String), state: 'closed' }),
      );
      expect(body.sessions.by_status).toEqual(
        expect.objectContaining({ healthy: expect.any(Number) }),
      );
      expect(body.queue).toEqual(expect.objectContaining({ pending: expect.any(Number) }));
      expect(body.redis).toEqual(
        expect.objectContaining({ mode: 'redis', fallback_active: false }),
      );
      expect(body.database.reachable).toBe(true);
      expect(body.database.pool.max).toBeGreaterThan(0);

      await redis.stop();
      const deadline = Date.now() + 10000;
      let after = await resilience(gw, token);
      while (after.redis.mode !== 'memory-fallback' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        after = await resilience(gw, token);
      }
      expect(after.redis).toEqual(
        expect.objectContaining({ mode: 'memory-fallback', fallback_active: true }),
      );

      const consumer = await newConsumer(gw);
      const withKey = await fetch(`${gw.url}/admin/resilience`, {
        headers: { authorization: `Bearer ${consumer.key}` },
      });
      expect(withKey.status).toBe(401);
      expect((await fetch(`${gw.url}/admin/resilience`)).status).toBe(401);
    } finally {
      await gw.close();
      await redis.stop();
    }
  });
});
