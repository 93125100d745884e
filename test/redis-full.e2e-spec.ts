import Redis from 'ioredis';
import { newConsumer } from './support/auth-factory';
import { startGateway, uniqueRedisPrefix } from './support/gateway';
import { startMockUpstream, oneProviderFile } from './support/mock-upstream';
import { startRedisServer } from './support/redis-server';

const OOM_WARNING = 'Redis refused a write: out of memory';

async function oomRefusals(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('gateway_redis_errors_total{reason="oom"}'));
  return line ? Number(line.split(' ').pop()) : 0;
}

/**
 * Writes values until Redis refuses one for memory, big ones first and then smaller ones, and
 * again until a write is still refused a second later: Redis frees a refused command's query
 * buffer, and shrinks idle clients' buffers once a second, which can leave room again.
 */
async function fillUntilRefused(filler: Redis): Promise<number> {
  let written = 0;
  for (let round = 0; round < 20; round++) {
    for (const size of [64 * 1024, 1024, 16]) {
      const value = 'x'.repeat(size);
      for (;;) {
        try {
          await filler.set(`fill:${written}`, value);
          written++;
        } catch (err) {
          if (/OOM command not allowed/.test((err as Error).message)) break;
          throw err;
        }
        if (written > 100_000) throw new Error('Redis never refused a write: is maxmemory set?');
      }
    }
    await new Promise((r) => setTimeout(r, 1100));
    const stillFull = await filler.set('fill:probe', 'x').then(
      () => false,
      () => true,
    );
    if (stillFull) return written;
  }
  throw new Error('Redis kept finding room again');
}

/**
 * Seed 002's "Redis OOM": Redis at maxmemory with noeviction refuses writes but still answers
 * reads and PING. The gateway answers those calls from process memory, counts and warns, and
 * does not announce a fallback (the recovery probe would end it at once and the logs flap).
 */
describe('Redis full (maxmemory with noeviction)', () => {
  it('answers chat requests 200 with rate-limit headers, counts the refusals and warns once, without FALLBACK ACTIVATED', async () => {
    const upstream = await startMockUpstream('primary');
    upstream.always({ mode: 'ok', content: 'answer from a full redis', delayMs: 5 });
    const file = oneProviderFile(upstream.url, ['gpt-full']);
    const server = await startRedisServer({
      args: ['--maxmemory', '4mb', '--maxmemory-policy', 'noeviction'],
    });
    const prefix = uniqueRedisPrefix();
    const gw = await startGateway({
      redis: server.url,
      env: { PROVIDERS_FILE: file, REDIS_KEY_PREFIX: prefix },
    });
    const filler = new Redis(server.url, { maxRetriesPerRequest: 1 });
    try {
      const client = await newConsumer(gw);
      const chat = (i: number) =>
        fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${client.key}`,
            'content-type': 'application/json',
            // Conversations and the response cache (temperature 0) write to Redis too.
            ...(i % 2 === 0 ? { 'x-conversation-id': 'full-redis' } : {}),
          },
          body: JSON.stringify({
            model: 'gpt-full',
            temperature: 0,
            messages: [{ role: 'user', content: `question ${i}` }],
            stream: i % 3 === 0,
          }),
        });
      const warm = await chat(-1);
      await warm.text();
      expect(warm.status).toBe(200);
      const refusedBefore = await oomRefusals(gw.url);

      expect(await fillUntilRefused(filler)).toBeGreaterThan(0);
      expect(await filler.ping()).toBe('PONG');

      for (let i = 0; i < 8; i++) {
        const res = await chat(i);
        const body = await res.text();
        expect({ status: res.status, body: res.status === 200 ? '' : body }).toEqual({
          status: 200,
          body: '',
        });
        expect(res.headers.get('x-ratelimit-limit-requests')).toMatch(/^\d+$/);
        expect(res.headers.get('x-ratelimit-remaining-requests')).toMatch(/^\d+$/);
      }
      // Longer than the recovery probe's period: a fallback announced here would flap.
      await new Promise((r) => setTimeout(r, 1500));

      expect(await oomRefusals(gw.url)).toBeGreaterThanOrEqual(refusedBefore + 8);
      const logs = gw.logText();
      expect(logs.split(OOM_WARNING).length - 1).toBe(1);
      expect(logs).not.toContain('FALLBACK ACTIVATED');
      expect(logs).not.toContain('FALLBACK DEACTIVATED');
      expect(logs).not.toContain('internal_error');
      const metrics = await (await fetch(`${gw.url}/metrics`)).text();
      expect(metrics).toMatch(/^gateway_redis_fallback_active 0$/m);
      expect(metrics).toMatch(/^gateway_redis_up 1$/m);

      // Room again: the next request counts on Redis, with no more refusals.
      const fillKeys = await filler.keys('fill:*');
      await filler.del(...fillKeys);
      const refusedBeforeRoom = await oomRefusals(gw.url);
      const res = await chat(100);
      await res.text();
      expect(res.status).toBe(200);
      expect(await filler.exists(`${prefix}rl:{${client.keyId}}:m`)).toBe(1);
      expect(await oomRefusals(gw.url)).toBe(refusedBeforeRoom);
    } finally {
      filler.disconnect();
      await gw.close();
      await server.stop();
      await upstream.stop();
    }
  });
});
