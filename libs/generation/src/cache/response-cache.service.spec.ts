import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { loadConfig } from '@app/config';
import { RedisService } from '@app/redis';
import { testEnv } from '../../../../test/support/test-env';
import type { ChatCompletion } from './cache.types';
import { ResponseCacheService } from './response-cache.service';

const principal = { userId: 'user-1', cacheScope: 'user' as const };
const completion = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1,
  model: 'gpt-test',
  choices: [{ index: 0, message: { role: 'assistant', content: 'cached' }, finish_reason: 'stop' }],
} as unknown as ChatCompletion;

function ask(text: string, extra: Record<string, unknown> = {}) {
  return {
    model: 'gpt-test',
    messages: [{ role: 'user', content: text }],
    temperature: 0,
    ...extra,
  };
}

describe('ResponseCacheService.prefetch', () => {
  let redis: RedisService;
  let cache: ResponseCacheService;
  let reads: jest.SpyInstance;

  beforeAll(async () => {
    if (!testEnv.redisUrl) throw new Error('Redis is required for this suite');
    const config = loadConfig({
      NODE_ENV: 'test',
      REDIS_URL: testEnv.redisUrl,
      REDIS_KEY_PREFIX: `rcspec${randomBytes(3).toString('hex')}:`,
    });
    config.backgroundTasks = false;
    const logger = pino({ level: 'silent' });
    redis = new RedisService(config, logger);
    await redis.connect();
    cache = new ResponseCacheService(config, logger, redis);
  });

  afterAll(async () => {
    await redis.onApplicationShutdown();
  });

  beforeEach(() => {
    reads = jest.spyOn(redis, 'withFallback');
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  it('lets the lookup take the read it started, and read again once that read is stale', async () => {
    const miss = await cache.lookup(ask('prefetched'), {}, principal);
    await cache.store(miss.storeKey!, completion, 'primary');
    reads.mockClear();

    cache.prefetch(ask('prefetched'), {}, principal);
    expect(reads).toHaveBeenCalledTimes(1);
    const hit = await cache.lookup(ask('prefetched'), {}, principal);
    expect(hit.result).toBe('hit');
    expect(hit.completion?.choices[0].message.content).toBe('cached');
    expect(reads).toHaveBeenCalledTimes(1);

    // Taken once: the next lookup reads for itself.
    await cache.lookup(ask('prefetched'), {}, principal);
    expect(reads).toHaveBeenCalledTimes(2);

    const now = Date.now();
    cache.prefetch(ask('prefetched'), {}, principal);
    jest.spyOn(Date, 'now').mockReturnValue(now + 1500);
    expect((await cache.lookup(ask('prefetched'), {}, principal)).result).toBe('hit');
    expect(reads).toHaveBeenCalledTimes(4);
  });

  it('replaces a stale read of the same key with a fresh one', async () => {
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now);
    cache.prefetch(ask('asked again later'), {}, principal);
    jest.spyOn(Date, 'now').mockReturnValue(now + 1500);
    cache.prefetch(ask('asked again later'), {}, principal);
    expect(reads).toHaveBeenCalledTimes(2);
    expect((await cache.lookup(ask('asked again later'), {}, principal)).result).toBe('miss');
    expect(reads).toHaveBeenCalledTimes(2);
  });

  it('is not used for another key: another user, or a body the pipeline changed', async () => {
    cache.prefetch(ask('mine'), {}, principal);
    const other = await cache.lookup(ask('mine'), {}, { userId: 'user-2', cacheScope: 'user' });
    const rewritten = await cache.lookup(ask('mine', { max_tokens: 5 }), {}, principal);
    expect([other.result, rewritten.result]).toEqual(['miss', 'miss']);
    expect(reads).toHaveBeenCalledTimes(3);
  });

  it('starts nothing for a body that is not cacheable or not a request at all', () => {
    for (const body of [
      'text',
      null,
      [1, 2],
      ask('warm', { temperature: 0.7 }),
      { model: 5, messages: 'none' },
    ])
      expect(() => cache.prefetch(body, {}, principal)).not.toThrow();
    cache.prefetch(ask('no-store'), { 'cache-control': 'no-store' }, principal);
    expect(reads).not.toHaveBeenCalled();
  });

  it('keeps at most 256 reads waiting, and drops stale ones as new ones come', () => {
    const now = Date.now();
    jest.spyOn(Date, 'now').mockReturnValue(now);
    for (let i = 0; i < 300; i++) cache.prefetch(ask(`flood ${i}`), {}, principal);
    // Some of the earlier tests' reads may still wait; never more than the bound in all.
    expect(reads.mock.calls.length).toBeLessThanOrEqual(256);
    expect(reads.mock.calls.length).toBeGreaterThan(200);

    reads.mockClear();
    jest.spyOn(Date, 'now').mockReturnValue(now + 1500);
    cache.prefetch(ask('after the flood'), {}, principal);
    expect(reads).toHaveBeenCalledTimes(1);
  });
});
