import {
  cacheKey,
  CacheScope,
  matchesSelector,
  modelSegment,
  normalizeRequest,
  parseCacheDirectives,
  planCache,
  requestHash,
  selectorPattern,
} from './cache-key';
import type { ChatRequestBody } from './cache.types';

const userA: CacheScope = { kind: 'user', userId: '00000000-0000-4000-8000-00000000000a' };
const userB: CacheScope = { kind: 'user', userId: '00000000-0000-4000-8000-00000000000b' };
const none = { noCache: false, noStore: false, force: false };

function body(extra: Partial<ChatRequestBody> = {}): ChatRequestBody {
  return {
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hello' }],
    temperature: 0,
    ...extra,
  };
}

describe('request normalization', () => {
  it('gives one hash to spellings of the same request', () => {
    const a = requestHash(body({ stream: true, user: 'x', n: 1, stop: 'END' }));
    const b = requestHash({
      temperature: 0,
      stop: ['END'],
      messages: [{ content: [{ type: 'text', text: 'hello' }], role: 'user', name: undefined }],
      model: 'gpt-4o-mini',
      stream: false,
      stream_options: { include_usage: true },
    });
    expect(a).toBe(b);
  });

  it('separates requests whose answer can differ', () => {
    const base = requestHash(body());
    for (const variant of [
      body({ model: 'other' }),
      body({ messages: [{ role: 'user', content: 'hello!' }] }),
      body({
        messages: [
          { role: 'system', content: 'x' },
          { role: 'user', content: 'hello' },
        ],
      }),
      body({ max_tokens: 5 }),
      body({ seed: 1 }),
      body({ n: 2 }),
      body({ response_format: { type: 'json_object' } }),
      body({ tools: [{ type: 'function', function: { name: 'f' } }] }),
      body({ some_future_param: true }),
    ]) {
      expect(requestHash(variant)).not.toBe(base);
    }
  });

  it('drops fields that do not change the answer', () => {
    const hints = { prompt_cache_key: 'tenant-7', safety_identifier: 'hashed-user' };
    expect(
      normalizeRequest(body({ stream: true, user: 'u', metadata: { a: 1 }, ...hints })),
    ).toEqual({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'hello' }],
      temperature: 0,
    });
  });
});

describe('cache keys and selectors', () => {
  it('scopes keys per user unless shared', () => {
    expect(cacheKey(userA, body())).not.toBe(cacheKey(userB, body()));
    expect(cacheKey({ kind: 'shared' }, body())).toMatch(/^rc:shared:gpt-4o-mini:[0-9a-f]{64}$/);
  });

  it('keeps odd model names inside one segment with no glob characters', () => {
    const key = cacheKey(userA, body({ model: 'org/model:v1*?[x]' }));
    const [, , model] = key.split(':');
    expect(model).toBe('org%2Fmodel%3Av1%2A%3F%5Bx%5D');
    expect(key.split(':')).toHaveLength(4);
  });

  it('spells a model segment as encodeURIComponent does, with the glob escaped', () => {
    const names = ['gpt-4o-mini', 'a.b_c-1', '', 'x:y', 'a*b', "o'k(1)!", '~x', 'a b', 'é/ü'];
    for (const name of names) {
      expect(modelSegment(name)).toBe(encodeURIComponent(name).replace(/\*/g, '%2A'));
    }
  });

  it('keeps the key of a request stable across releases (entries already in Redis stay hits)', () => {
    // sha256 of {"max_tokens":32,"messages":[{"content":"hello","role":"user"}],"model":"gpt-4o-mini","temperature":0}
    const spelled = body({
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hello' }] }],
      max_tokens: 32,
      stream: true,
    });
    expect(cacheKey({ kind: 'shared' }, spelled)).toBe(
      'rc:shared:gpt-4o-mini:89f2c37f92e6afadf16ecda6056e44b787bf8b6fdd633414e01e3a348f990582',
    );
  });

  it('selects by user, by model, by both, or everything', () => {
    const a = cacheKey(userA, body());
    const b = cacheKey(userB, body({ model: 'm2' }));
    const shared = cacheKey({ kind: 'shared' }, body());
    const byUser = { userId: userA.kind === 'user' ? userA.userId : '' };
    expect([a, b, shared].map((k) => matchesSelector(k, byUser))).toEqual([true, false, false]);
    expect([a, b, shared].map((k) => matchesSelector(k, { model: 'gpt-4o-mini' }))).toEqual([
      true,
      false,
      true,
    ]);
    expect([a, b, shared].every((k) => matchesSelector(k, {}))).toBe(true);
    expect(selectorPattern({})).toBe('rc:*');
    expect(selectorPattern({ model: 'a:b' })).toBe('rc:*:a%3Ab:*');
    expect(selectorPattern({ ...byUser, model: 'm' })).toBe(`rc:u.${byUser.userId}:m:*`);
  });
});

describe('cache directives and plans', () => {
  it('reads Cache-Control, Pragma and x-cache', () => {
    expect(parseCacheDirectives({ 'cache-control': 'No-Cache, max-age=0' })).toEqual({
      noCache: true,
      noStore: false,
      force: false,
    });
    expect(parseCacheDirectives({ pragma: 'no-cache', 'x-cache': 'force' })).toEqual({
      noCache: true,
      noStore: false,
      force: true,
    });
    expect(parseCacheDirectives({ 'cache-control': 'no-store' }).noStore).toBe(true);
  });

  it('caches temperature 0 or forced requests only', () => {
    expect(planCache(body(), none, userA).mode).toBe('lookup');
    expect(planCache(body({ temperature: 0.7 }), none, userA)).toEqual({
      mode: 'bypass',
      reason: 'not_deterministic',
    });
    expect(planCache(body({ temperature: undefined }), none, userA).mode).toBe('bypass');
    expect(planCache(body({ temperature: 1 }), { ...none, force: true }, userA).mode).toBe(
      'lookup',
    );
  });

  it('refreshes on no-cache and stays out on no-store', () => {
    expect(planCache(body(), { ...none, noCache: true }, userA).mode).toBe('refresh');
    expect(planCache(body(), { ...none, noStore: true, force: true }, userA).mode).toBe('bypass');
  });
});
