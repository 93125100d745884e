import { newConsumer } from './support/auth-factory';
import { startGateway } from './support/gateway';
import { startMockUpstream, oneProviderFile } from './support/mock-upstream';
import { startRedisServer } from './support/redis-server';

/**
 * Seed 003's Redis drill under traffic: rate limits, cache and conversations keep answering while
 * the redis-server is killed and restarted, and the fallback is announced both ways.
 */
describe('Redis killed mid-traffic', () => {
  it('fails no request while cache, limits and conversations fall back and come back', async () => {
    const upstream = await startMockUpstream('primary');
    upstream.always({ mode: 'ok', content: 'steady answer', delayMs: 5 });
    const file = oneProviderFile(upstream.url, ['gpt-drill']);
    const server = await startRedisServer();
    const gw = await startGateway({ redis: server.url, env: { PROVIDERS_FILE: file } });
    const fallbackGauge = async () => {
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      return Number(/^gateway_redis_fallback_active (\d)/m.exec(text)?.[1]);
    };
    try {
      const clients = await Promise.all([1, 2, 3].map(() => newConsumer(gw)));
      const statuses: number[] = [];
      const cacheResults = new Set<string | null>();
      let sent = 0;
      const traffic = clients.map(async (client, c) => {
        for (let i = 0; i < 24; i++) {
          sent++;
          const res = await fetch(`${gw.url}/v1/chat/completions`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${client.key}`,
              'content-type': 'application/json',
              ...(i % 2 === 0 ? { 'x-conversation-id': `drill-${c}` } : {}),
            },
            body: JSON.stringify({
              model: 'gpt-drill',
              temperature: 0,
              messages: [{ role: 'user', content: `question ${i % 4}` }],
              stream: i % 3 === 0,
            }),
          });
          await res.text();
          statuses.push(res.status);
          cacheResults.add(res.headers.get('x-cache'));
        }
      });
      const drill = (async () => {
        while (sent < 15) await new Promise((r) => setTimeout(r, 5));
        await server.stop();
        while (sent < 45) await new Promise((r) => setTimeout(r, 5));
        expect(await fallbackGauge()).toBe(1);
        const health = await (await fetch(`${gw.url}/health/detailed`)).json();
        const limiter = health.components.find((x: { name: string }) => x.name === 'rate_limiter');
        expect(limiter.details.backend).toBe('local');
        await server.restart();
      })();
      await Promise.all([...traffic, drill]);

      expect(statuses).toHaveLength(72);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(cacheResults.has('hit')).toBe(true);
      const deadline = Date.now() + 10_000;
      while (!gw.logText().includes('FALLBACK DEACTIVATED') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const logs = gw.logText();
      expect(logs).toContain('FALLBACK ACTIVATED');
      expect(logs).toContain('FALLBACK DEACTIVATED');
      expect(logs).toContain('limits now counted per process');
      expect(logs).toContain('rate limits counted on Redis again');
      expect(await fallbackGauge()).toBe(0);
    } finally {
      await gw.close();
      await server.stop();
      await upstream.stop();
    }
  });
});
