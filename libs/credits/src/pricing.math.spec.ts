import fc from 'fast-check';
import {
  DEFAULT_MAX_COMPLETION_TOKENS,
  estimatePromptTokens,
  estimateTokens,
  isFree,
  maxChatUsage,
  maxImageUsage,
  ModelPrice,
  priceOf,
} from './pricing.math';

const price = (p: Partial<ModelPrice>): ModelPrice => ({
  model: 'm',
  perRequest: 0,
  per1kPromptTokens: 0,
  per1kCompletionTokens: 0,
  perImage: 0,
  perImageBySize: {},
  ...p,
});

describe('priceOf', () => {
  const chat = price({ perRequest: 1, per1kPromptTokens: 1, per1kCompletionTokens: 2 });

  it('adds per request, per 1k prompt and completion tokens, and rounds up once', () => {
    expect(priceOf(chat, {})).toBe(1);
    expect(priceOf(chat, { promptTokens: 1000, completionTokens: 1000 })).toBe(4);
    // 1 + 0.001 + 0.002 = 1.003 → 2
    expect(priceOf(chat, { promptTokens: 1, completionTokens: 1 })).toBe(2);
    expect(priceOf(chat, { promptTokens: 2000, completionTokens: 500 })).toBe(4);
  });

  it('does not round a sum of decimals up by floating-point accident', () => {
    // 0.1 + 0.2 is 0.30000000000000004 in floating point; three such requests are exactly 1 credit.
    const p = price({ per1kPromptTokens: 0.1, per1kCompletionTokens: 0.2 });
    expect(priceOf(p, { promptTokens: 1000, completionTokens: 1000 })).toBe(1);
    expect(priceOf(price({ perRequest: 0.7, perImage: 0.3 }), { images: 1 })).toBe(1);
  });

  it('prices images per image, with per-size prices when listed', () => {
    const img = price({ perImage: 40, perImageBySize: { '1792x1024': 80 } });
    expect(priceOf(img, { images: 2 })).toBe(80);
    expect(priceOf(img, { images: 2, size: '1024x1024' })).toBe(80);
    expect(priceOf(img, { images: 2, size: '1792x1024' })).toBe(160);
  });

  it('ignores negative, fractional and non-finite usage instead of crediting the user', () => {
    expect(priceOf(chat, { promptTokens: -5000, completionTokens: Number.NaN })).toBe(1);
    expect(priceOf(chat, { completionTokens: Number.POSITIVE_INFINITY })).toBe(1);
    expect(priceOf(chat, { completionTokens: 0.5 })).toBe(2);
  });

  it('saturates instead of overflowing on absurd usage', () => {
    expect(priceOf(chat, { completionTokens: 1e300 })).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('equals the exact rational price rounded up (property)', () => {
    const micro = fc.integer({ min: 0, max: 100_000_000 }); // up to 100 credits, 6 decimals
    const tokens = fc.integer({ min: 0, max: 1_000_000 });
    fc.assert(
      fc.property(
        micro,
        micro,
        micro,
        micro,
        tokens,
        tokens,
        fc.integer({ min: 0, max: 10 }),
        (pr, pp, pc, pi, p, c, n) => {
          const model = price({
            perRequest: pr / 1e6,
            per1kPromptTokens: pp / 1e6,
            per1kCompletionTokens: pc / 1e6,
            perImage: pi / 1e6,
          });
          // Exact: in units of 1e-9 credits.
          const nano =
            BigInt(pr) * 1000n +
            BigInt(pp) * BigInt(p) +
            BigInt(pc) * BigInt(c) +
            BigInt(pi) * 1000n * BigInt(n);
          const expected = Number((nano + 999_999_999n) / 1_000_000_000n);
          expect(priceOf(model, { promptTokens: p, completionTokens: c, images: n })).toBe(
            expected,
          );
        },
      ),
    );
  });

  it('never decreases when usage grows (property)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1000, noNaN: true }),
        fc.double({ min: 0, max: 1000, noNaN: true }),
        fc.nat(100_000),
        fc.nat(100_000),
        fc.nat(100_000),
        (pp, pc, p, c, extra) => {
          const model = price({ per1kPromptTokens: pp, per1kCompletionTokens: pc });
          const base = priceOf(model, { promptTokens: p, completionTokens: c });
          expect(
            priceOf(model, { promptTokens: p + extra, completionTokens: c }),
          ).toBeGreaterThanOrEqual(base);
          expect(
            priceOf(model, { promptTokens: p, completionTokens: c + extra }),
          ).toBeGreaterThanOrEqual(base);
        },
      ),
    );
  });
});

describe('isFree', () => {
  it('is true for a missing price and for all-zero prices', () => {
    expect(isFree(undefined)).toBe(true);
    expect(isFree(price({}))).toBe(true);
    expect(isFree(price({ perImageBySize: { '1x1': 0 } }))).toBe(true);
    expect(isFree(price({ perImageBySize: { '1x1': 1 } }))).toBe(false);
    expect(isFree(price({ per1kCompletionTokens: 0.001 }))).toBe(false);
  });
});

describe('maximum usage of a request', () => {
  it('uses max_tokens (or max_completion_tokens) for each of n choices', () => {
    const body = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 100, n: 3 };
    expect(maxChatUsage(body).completionTokens).toBe(300);
    expect(maxChatUsage({ ...body, max_completion_tokens: 50 }).completionTokens).toBe(150);
  });

  it('assumes a sane cap when max_tokens is absent or invalid', () => {
    expect(maxChatUsage({ messages: [] }).completionTokens).toBe(DEFAULT_MAX_COMPLETION_TOKENS);
    expect(maxChatUsage({ messages: [], max_tokens: -1, n: 'x' }).completionTokens).toBe(
      DEFAULT_MAX_COMPLETION_TOKENS,
    );
  });

  it('estimates prompt tokens high rather than low', () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(20);
    // ~4 characters per token for English: the estimate must be at least that.
    expect(estimateTokens(text)).toBeGreaterThanOrEqual(Math.ceil(text.length / 4));
    expect(estimateTokens('')).toBe(0);
    const tokens = estimatePromptTokens({
      messages: [
        { role: 'system', content: 'be brief' },
        {
          role: 'user',
          content: [
            { type: 'text', text },
            { type: 'image_url', image_url: {} },
          ],
        },
      ],
    });
    expect(tokens).toBeGreaterThan(estimateTokens(text) + 1000);
  });

  it('survives any JSON body without throwing (property)', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), (body) => {
        const chat = maxChatUsage(body);
        expect(chat.promptTokens).toBeGreaterThan(0);
        expect(chat.completionTokens).toBeGreaterThan(0);
        expect(maxImageUsage(body).images).toBeGreaterThanOrEqual(1);
      }),
    );
  });

  it('reads n and size of an image request', () => {
    expect(maxImageUsage({ n: 4, size: '1024x1024' })).toEqual({ images: 4, size: '1024x1024' });
    expect(maxImageUsage({})).toEqual({ images: 1, size: undefined });
    expect(maxImageUsage({ n: 1e9 }).images).toBe(128);
  });
});
