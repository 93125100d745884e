import Redis from 'ioredis';
import { APP_CONFIG, AppConfig } from '@app/config';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { metricValue } from './support/auth-probe';
import { startGateway, TestGateway } from './support/gateway';
import { MockUpstream, startMockUpstream, oneProviderFile } from './support/mock-upstream';
import { RedisServer, startRedisServer } from './support/redis-server';
import { testEnv } from './support/test-env';
import { waitFor } from './support/wait-for';

const MODEL = 'gpt-cache-test';
const OTHER_MODEL = 'gpt-cache-other';

function providers(upstream: MockUpstream): string {
  return oneProviderFile(
    upstream.url,
    [MODEL, OTHER_MODEL],
    [`{ model: ${MODEL}, per_request: 5 }`],
  );
}

/** Runs `test` on a gateway with a redis-server of its own (to stop and start) and its own upstream. */
async function onOwnRedis(
  test: (gw: TestGateway, server: RedisServer, upstream: MockUpstream) => Promise<void>,
): Promise<void> {
  const upstream = await startMockUpstream('primary');
  const server = await startRedisServer();
  const gw = await startGateway({
    redis: server.url,
    env: { PROVIDERS_FILE: providers(upstream) },
  });
  try {
    await test(gw, server, upstream);
  } finally {
    await gw.close();
    await server.stop();
    await upstream.stop();
  }
}

interface ChatReply {
  status: number;
  headers: Headers;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Parsed SSE events (stream requests). */
  events: any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  done: boolean;
}

async function chat(
  gw: TestGateway,
  consumer: TestConsumer,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<ChatReply> {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${consumer.key}`,
      'content-type': 'application/json',
      ...headers,
    },
    body: JSON.stringify({ model: MODEL, ...body }),
  });
  const text = await res.text();
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    return {
      status: res.status,
      headers: res.headers,
      body: JSON.parse(text),
      events: [],
      done: false,
    };
  }
  const frames = text
    .split('\n\n')
    .map((f) => f.trim())
    .filter((f) => f.startsWith('data: '))
    .map((f) => f.slice(6));
  return {
    status: res.status,
    headers: res.headers,
    body: null,
    events: frames.filter((f) => f !== '[DONE]').map((f) => JSON.parse(f)),
    done: frames.at(-1) === '[DONE]',
  };
}

function ask(text: string, extra: Record<string, unknown> = {}) {
  return { messages: [{ role: 'user', content: text }], temperature: 0, ...extra };
}

function streamedText(reply: ChatReply): string {
  return reply.events.map((e) => e.choices?.[0]?.delta?.content ?? '').join('');
}

async function balance(gw: TestGateway, consumer: TestConsumer): Promise<number> {
  const res = await fetch(`${gw.url}/v1/credits`, {
    headers: { authorization: `Bearer ${consumer.key}` },
  });
  return (await res.json()).balance;
}

describe('response cache', () => {
  let upstream: MockUpstream;
  let gw: TestGateway;
  let admin: string;

  beforeAll(async () => {
    if (!testEnv.redisUrl) throw new Error('Redis is required for this suite');
    upstream = await startMockUpstream('primary');
    gw = await startGateway({ env: { PROVIDERS_FILE: providers(upstream) } });
    admin = (await adminToken(gw)).token;
  });
  afterAll(async () => {
    await gw.close();
    await upstream.stop();
  });
  beforeEach(() => {
    upstream.reset();
  });

  const asAdmin = (path: string, method = 'GET') =>
    fetch(`${gw.url}${path}`, { method, headers: { authorization: `Bearer ${admin}` } });

  it('answers a repeated temperature-0 request from the cache without calling upstream', async () => {
    const consumer = await newConsumer(gw);
    const hitsBefore = await metricValue(gw.url, 'gateway_cache_requests_total', 'result="hit"');
    upstream.next({ mode: 'ok', content: 'the first answer' });
    const first = await chat(gw, consumer, ask('what is 2+2?'));
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache')).toBe('miss');
    expect(upstream.count).toBe(1);

    const second = await chat(
      gw,
      consumer,
      ask('what is 2+2?', { user: 'someone', stream: false }),
    );
    expect(second.status).toBe(200);
    expect(second.headers.get('x-cache')).toBe('hit');
    expect(second.headers.get('x-provider')).toBe('primary');
    expect(upstream.count).toBe(1);
    expect(second.body.choices[0].message.content).toBe('the first answer');
    expect(second.body.usage).toEqual(first.body.usage);
    expect(second.body.id).not.toBe(first.body.id);
    expect(await metricValue(gw.url, 'gateway_cache_requests_total', 'result="hit"')).toBe(
      hitsBefore + 1,
    );
  });

  it('reads the cache in the same round trip as the rate-limit check', async () => {
    const consumer = await newConsumer(gw);
    const prefix = gw.gateway.app.get<AppConfig>(APP_CONFIG).redis.keyPrefix;
    const watcher = new Redis(testEnv.redisUrl!);
    const monitor = await watcher.monitor();
    // This gateway's cache reads and rate-limit scripts, in the order Redis ran them.
    const seen: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      const command = String(args[0]).toLowerCase();
      if (command === 'get' && String(args[1]).startsWith(`${prefix}rc:`)) seen.push('cache read');
      if (command === 'evalsha' && args.some((a) => String(a).startsWith(`${prefix}rl:`)))
        seen.push('rate limit');
    });
    try {
      upstream.next({ mode: 'ok', content: 'read early' });
      const miss = await chat(gw, consumer, ask('is the read early?'));
      const hit = await chat(gw, consumer, ask('is the read early?'));
      const deadline = Date.now() + 2000;
      while (seen.length < 4 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

      expect([miss.headers.get('x-cache'), hit.headers.get('x-cache')]).toEqual(['miss', 'hit']);
      expect(hit.body.choices[0].message.content).toBe('read early');
      // The read leaves first, with the script right behind it; the lookup reads nothing more.
      expect(seen).toEqual(['cache read', 'rate limit', 'cache read', 'rate limit']);
    } finally {
      monitor.disconnect();
      watcher.disconnect();
    }
  });

  it('bypasses requests that are not deterministic, unless forced', async () => {
    const consumer = await newConsumer(gw);
    for (let i = 0; i < 2; i++) {
      const res = await chat(gw, consumer, ask('tell me a story', { temperature: 0.8 }));
      expect(res.headers.get('x-cache')).toBe('bypass');
    }
    const noTemperature = await chat(gw, consumer, { messages: [{ role: 'user', content: 'hi' }] });
    expect(noTemperature.headers.get('x-cache')).toBe('bypass');
    expect(upstream.count).toBe(3);

    const forced = { 'x-cache': 'force' };
    expect(
      (await chat(gw, consumer, ask('story', { temperature: 0.8 }), forced)).headers.get('x-cache'),
    ).toBe('miss');
    expect(
      (await chat(gw, consumer, ask('story', { temperature: 0.8 }), forced)).headers.get('x-cache'),
    ).toBe('hit');
    expect(upstream.count).toBe(4);
  });

  it('keys on every parameter that changes the answer', async () => {
    const consumer = await newConsumer(gw);
    await chat(gw, consumer, ask('same words'));
    for (const variant of [
      ask('same words', { max_tokens: 3 }),
      ask('same words', { seed: 7 }),
      { ...ask('same words'), model: OTHER_MODEL },
      ask('same words!'),
    ]) {
      expect((await chat(gw, consumer, variant)).headers.get('x-cache')).toBe('miss');
    }
    expect(upstream.count).toBe(5);
  });

  it('Cache-Control: no-cache goes upstream and refreshes the entry; no-store leaves it alone', async () => {
    const consumer = await newConsumer(gw);
    upstream.next({ mode: 'ok', content: 'old answer' });
    await chat(gw, consumer, ask('refresh me'));
    upstream.next({ mode: 'ok', content: 'new answer' });
    const refreshed = await chat(gw, consumer, ask('refresh me'), { 'cache-control': 'no-cache' });
    expect(refreshed.headers.get('x-cache')).toBe('bypass');
    expect(refreshed.body.choices[0].message.content).toBe('new answer');
    const hit = await chat(gw, consumer, ask('refresh me'));
    expect(hit.headers.get('x-cache')).toBe('hit');
    expect(hit.body.choices[0].message.content).toBe('new answer');

    upstream.next({ mode: 'ok', content: 'never stored' });
    const noStore = await chat(gw, consumer, ask('refresh me'), { 'cache-control': 'no-store' });
    expect(noStore.headers.get('x-cache')).toBe('bypass');
    expect(noStore.body.choices[0].message.content).toBe('never stored');
    expect((await chat(gw, consumer, ask('refresh me'))).body.choices[0].message.content).toBe(
      'new answer',
    );
    expect(upstream.count).toBe(3);
  });

  it("never gives one user another user's cached answer, unless both keys share", async () => {
    const alice = await newConsumer(gw);
    const bob = await newConsumer(gw);
    upstream.next({ mode: 'ok', content: 'for alice' }, { mode: 'ok', content: 'for bob' });
    expect((await chat(gw, alice, ask('private question'))).headers.get('x-cache')).toBe('miss');
    const bobs = await chat(gw, bob, ask('private question'));
    expect(bobs.headers.get('x-cache')).toBe('miss');
    expect(bobs.body.choices[0].message.content).toBe('for bob');
    expect((await chat(gw, alice, ask('private question'))).body.choices[0].message.content).toBe(
      'for alice',
    );
    expect(upstream.count).toBe(2);

    for (const consumer of [alice, bob]) {
      const res = await fetch(`${gw.url}/admin/keys/${consumer.keyId}`, {
        method: 'PATCH',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ cache_scope: 'shared' }),
      });
      expect(res.status).toBe(200);
    }
    upstream.next({ mode: 'ok', content: 'shared answer' });
    expect((await chat(gw, alice, ask('public question'))).headers.get('x-cache')).toBe('miss');
    const shared = await chat(gw, bob, ask('public question'));
    expect(shared.headers.get('x-cache')).toBe('hit');
    expect(shared.body.choices[0].message.content).toBe('shared answer');
  });

  it('replays a cached answer as SSE with the same chunk shape, and caches streamed answers', async () => {
    const consumer = await newConsumer(gw);
    upstream.next({ mode: 'ok', content: 'streamed once, replayed later' });
    const live = await chat(gw, consumer, ask('stream it', { stream: true }));
    expect(live.headers.get('x-cache')).toBe('miss');
    expect(live.done).toBe(true);
    expect(streamedText(live)).toBe('streamed once, replayed later');

    const replay = await chat(
      gw,
      consumer,
      ask('stream it', { stream: true, stream_options: { include_usage: true } }),
    );
    expect(replay.headers.get('x-cache')).toBe('hit');
    expect(replay.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(replay.done).toBe(true);
    expect(streamedText(replay)).toBe('streamed once, replayed later');
    expect(upstream.count).toBe(1);
    for (const event of replay.events) {
      expect(event).toMatchObject({
        object: 'chat.completion.chunk',
        id: expect.any(String),
        created: expect.any(Number),
        model: MODEL,
      });
      expect(Array.isArray(event.choices)).toBe(true);
    }
    const liveKeys = Object.keys(live.events[1].choices[0]).sort();
    expect(Object.keys(replay.events[1].choices[0]).sort()).toEqual(liveKeys);
    expect(replay.events[0].choices[0].delta.role).toBe('assistant');
    expect(replay.events.at(-2).choices[0].finish_reason).toBe('stop');
    expect(replay.events.at(-1)).toMatchObject({ choices: [], usage: expect.any(Object) });

    // And a non-streaming request is served from the entry the stream stored.
    const json = await chat(gw, consumer, ask('stream it'));
    expect(json.headers.get('x-cache')).toBe('hit');
    expect(json.body.choices[0].message.content).toBe('streamed once, replayed later');
  });

  it('does not cache an upstream failure or a stream cut short', async () => {
    const consumer = await newConsumer(gw);
    upstream.next({ mode: 'status', status: 400, message: 'bad request upstream' });
    expect((await chat(gw, consumer, ask('fails'))).status).toBe(400);
    expect((await chat(gw, consumer, ask('fails'))).headers.get('x-cache')).toBe('miss');

    upstream.next({ mode: 'cut', afterChunks: 2 });
    const cut = await chat(gw, consumer, ask('cut', { stream: true }));
    expect(cut.done).toBe(false);
    expect((await chat(gw, consumer, ask('cut'))).headers.get('x-cache')).toBe('miss');
  });

  it('reports stats and clears all, by user, or by model', async () => {
    const alice = await newConsumer(gw);
    const bob = await newConsumer(gw);
    await chat(gw, alice, ask('a1'));
    await chat(gw, alice, { ...ask('a2'), model: OTHER_MODEL });
    await chat(gw, bob, ask('b1'));
    await chat(gw, bob, ask('b1'));

    const stats = await (await asAdmin('/admin/cache/stats')).json();
    expect(stats).toMatchObject({
      backend: 'redis',
      counted_by: 'cluster',
      ttl_seconds: 3600,
      keys: expect.any(Number),
      memory_bytes: expect.any(Number),
    });
    expect(stats.hits).toBeGreaterThanOrEqual(1);
    expect(stats.misses).toBeGreaterThanOrEqual(3);
    expect(stats.hit_rate).toBeCloseTo(stats.hits / (stats.hits + stats.misses), 3);
    expect(stats.keys).toBeGreaterThanOrEqual(3);
    expect(stats.memory_bytes).toBeGreaterThan(0);

    expect((await asAdmin('/admin/cache?user_id=not-a-uuid', 'DELETE')).status).toBe(400);
    const byUser = await (await asAdmin(`/admin/cache?user_id=${alice.userId}`, 'DELETE')).json();
    expect(byUser).toEqual({ deleted: 2, user_id: alice.userId, model: null });
    expect((await chat(gw, alice, ask('a1'))).headers.get('x-cache')).toBe('miss');
    expect((await chat(gw, bob, ask('b1'))).headers.get('x-cache')).toBe('hit');

    const byModel = await (await asAdmin(`/admin/cache?model=${MODEL}`, 'DELETE')).json();
    expect(byModel.deleted).toBeGreaterThanOrEqual(2);
    expect((await chat(gw, bob, ask('b1'))).headers.get('x-cache')).toBe('miss');

    const all = await (await asAdmin('/admin/cache', 'DELETE')).json();
    expect(all.deleted).toBeGreaterThanOrEqual(1);
    expect((await (await asAdmin('/admin/cache/stats')).json()).keys).toBe(0);

    const audit = await (await asAdmin('/admin/audit?action=cache.clear')).json();
    expect(audit.data.length).toBeGreaterThanOrEqual(3);
  });

  it('charges nothing for a hit by default', async () => {
    const consumer = await newConsumer(gw, { credits: 100 });
    await chat(gw, consumer, ask('free hit'));
    const afterMiss = await balance(gw, consumer);
    expect((await chat(gw, consumer, ask('free hit'))).headers.get('x-cache')).toBe('hit');
    expect(await balance(gw, consumer)).toBe(afterMiss);
  });
});

describe('response cache: price, TTL and Redis outage', () => {
  it('charges CACHE_HIT_PRICE for a hit and lets entries expire after CACHE_DEFAULT_TTL', async () => {
    const upstream = await startMockUpstream('primary');
    const gw = await startGateway({
      env: { PROVIDERS_FILE: providers(upstream), CACHE_HIT_PRICE: '2', CACHE_DEFAULT_TTL: '1' },
    });
    try {
      const consumer = await newConsumer(gw, { credits: 100 });
      await chat(gw, consumer, ask('priced'));
      const afterMiss = await balance(gw, consumer);
      const hit = await chat(gw, consumer, ask('priced'));
      expect(hit.headers.get('x-cache')).toBe('hit');
      expect(await balance(gw, consumer)).toBe(afterMiss - 2);
      expect(upstream.count).toBe(1);

      await new Promise((r) => setTimeout(r, 1200));
      expect((await chat(gw, consumer, ask('priced'))).headers.get('x-cache')).toBe('miss');
      expect(upstream.count).toBe(2);
    } finally {
      await gw.close();
      await upstream.stop();
    }
  });

  it('keeps a hit on a model without a price free, even with CACHE_HIT_PRICE set', async () => {
    const upstream = await startMockUpstream('primary');
    const gw = await startGateway({
      env: {
        PROVIDERS_FILE: providers(upstream),
        CACHE_HIT_PRICE: '2',
        JOB_POLL_INTERVAL_MS: '500',
      },
    });
    try {
      const consumer = await newConsumer(gw, { credits: 0, scopes: ['chat', 'jobs'] });
      const free = ask('a free question', { model: OTHER_MODEL });
      expect((await chat(gw, consumer, free)).status).toBe(200);
      const hit = await chat(gw, consumer, free);
      expect(hit.status).toBe(200);
      expect(hit.headers.get('x-cache')).toBe('hit');
      expect(hit.headers.get('x-credits-remaining')).toBeNull();

      // The same answer through a job: what the job says it cost is what was charged.
      const auth = { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' };
      const submitted = await fetch(`${gw.url}/v1/generations`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ type: 'chat', request: { model: OTHER_MODEL, ...free } }),
      });
      expect(submitted.status).toBe(202);
      const { id } = await submitted.json();
      const job = await waitFor(async () => {
        const res = await fetch(`${gw.url}/v1/generations/${id}`, { headers: auth });
        const body = await res.json();
        return body.status === 'succeeded' ? body : undefined;
      });
      expect(job.credits_charged).toBe(0);

      expect(await balance(gw, consumer)).toBe(0);
      expect(upstream.count).toBe(1);
    } finally {
      await gw.close();
      await upstream.stop();
    }
  });

  it('keeps caching in process memory while Redis is down, and back on Redis after', () =>
    onOwnRedis(async (gw, server) => {
      const consumer = await newConsumer(gw);
      await chat(gw, consumer, ask('before the outage'));
      await server.stop();
      const statuses: number[] = [];
      const results: (string | null)[] = [];
      for (const text of ['during', 'during', 'before the outage']) {
        const res = await chat(gw, consumer, ask(text));
        statuses.push(res.status);
        results.push(res.headers.get('x-cache'));
      }
      expect(statuses).toEqual([200, 200, 200]);
      // Memory is a separate store: the entry made on Redis is not there.
      expect(results).toEqual(['miss', 'hit', 'miss']);
      const stats = await (
        await fetch(`${gw.url}/admin/cache/stats`, {
          headers: { authorization: `Bearer ${(await adminToken(gw)).token}` },
        })
      ).json();
      expect(stats).toMatchObject({ backend: 'memory', counted_by: 'process' });
      expect(stats.keys).toBeGreaterThanOrEqual(2);

      await server.restart();
      const deadline = Date.now() + 10_000;
      while (!gw.logText().includes('FALLBACK DEACTIVATED') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      // The restarted Redis is empty (nothing persisted): a miss, then a hit on Redis again.
      expect((await chat(gw, consumer, ask('during'))).headers.get('x-cache')).toBe('miss');
      expect((await chat(gw, consumer, ask('during'))).headers.get('x-cache')).toBe('hit');
    }));

  it('applies a clear made while Redis is unreachable to Redis once it is back', () =>
    onOwnRedis(async (gw, server, upstream) => {
      const consumer = await newConsumer(gw);
      const admin = (await adminToken(gw)).token;
      await chat(gw, consumer, ask('a wrong answer'));
      expect((await chat(gw, consumer, ask('a wrong answer'))).headers.get('x-cache')).toBe('hit');

      // Frozen, not restarted: the entry is still in Redis when it answers again.
      server.pause();
      const cleared = await fetch(`${gw.url}/admin/cache`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${admin}` },
      });
      expect(cleared.status).toBe(200);
      server.resume();
      await waitFor(() => gw.logText().includes('FALLBACK DEACTIVATED'), 15_000, 'Redis back');
      await waitFor(
        async () => {
          const stats = await fetch(`${gw.url}/admin/cache/stats`, {
            headers: { authorization: `Bearer ${admin}` },
          });
          return (await stats.json()).keys === 0;
        },
        5000,
        'the cleared entry gone from Redis',
      );

      const after = await chat(gw, consumer, ask('a wrong answer'));
      expect(after.status).toBe(200);
      expect(after.headers.get('x-cache')).toBe('miss');
      expect(upstream.count).toBe(2);
    }));
});
