import fc from 'fast-check';
import {
  formatReset,
  HOUR_MS,
  LocalWindows,
  MINUTE_MS,
  rateLimitHeaders,
  retryAfterSeconds,
  toDecision,
} from './rate-limit.window';

function clock(start = 1_700_000_000_000) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('LocalWindows', () => {
  it('lets exactly the per-minute limit through, then refuses with the time to reset', () => {
    const c = clock();
    const windows = new LocalWindows(c.now);
    const limits = { perMinute: 3, perHour: 100 };
    const remaining = [1, 2, 3].map(() => {
      const d = windows.consume('k', limits);
      expect(d.allowed).toBe(true);
      return rateLimitHeaders(d)['x-ratelimit-remaining-requests'];
    });
    expect(remaining).toEqual(['2', '1', '0']);
    c.advance(20_000);
    const refused = windows.consume('k', limits);
    expect(refused).toMatchObject({ allowed: false, scope: 'key_minute', retryAfterMs: 40_000 });
    expect(rateLimitHeaders(refused)['retry-after']).toBe('40');
  });

  it('opens a fresh minute window once the old one has expired', () => {
    const c = clock();
    const windows = new LocalWindows(c.now);
    const limits = { perMinute: 2, perHour: 100 };
    windows.consume('k', limits);
    windows.consume('k', limits);
    expect(windows.consume('k', limits).allowed).toBe(false);
    c.advance(MINUTE_MS);
    const next = windows.consume('k', limits);
    expect(next.allowed).toBe(true);
    expect(next.minute).toEqual({ count: 1, resetInMs: MINUTE_MS });
    expect(next.hour.count).toBe(3);
  });

  it('does not count refused requests in either window', () => {
    const c = clock();
    const windows = new LocalWindows(c.now);
    const limits = { perMinute: 1, perHour: 100 };
    windows.consume('k', limits);
    for (let i = 0; i < 5; i++) windows.consume('k', limits);
    const d = windows.consume('k', limits);
    expect(d.minute.count).toBe(1);
    expect(d.hour.count).toBe(1);
  });

  it('refuses on the hour window even when the minute window has room', () => {
    const c = clock();
    const windows = new LocalWindows(c.now);
    const limits = { perMinute: 10, perHour: 3 };
    for (let i = 0; i < 3; i++) {
      expect(windows.consume('k', limits).allowed).toBe(true);
      c.advance(MINUTE_MS);
    }
    const refused = windows.consume('k', limits);
    expect(refused.scope).toBe('key_hour');
    expect(refused.retryAfterMs).toBe(HOUR_MS - 3 * MINUTE_MS);
    expect(rateLimitHeaders(refused)['retry-after']).toBe(String((HOUR_MS - 3 * MINUTE_MS) / 1000));
  });

  it('keeps keys apart', () => {
    const windows = new LocalWindows();
    const limits = { perMinute: 1, perHour: 10 };
    expect(windows.consume('a', limits).allowed).toBe(true);
    expect(windows.consume('b', limits).allowed).toBe(true);
    expect(windows.consume('a', limits).allowed).toBe(false);
  });

  it('applies a changed limit to the running window at once', () => {
    const windows = new LocalWindows();
    for (let i = 0; i < 5; i++) windows.consume('k', { perMinute: 5, perHour: 100 });
    expect(windows.consume('k', { perMinute: 5, perHour: 100 }).allowed).toBe(false);
    expect(windows.consume('k', { perMinute: 10, perHour: 100 }).allowed).toBe(true);
    expect(windows.consume('k', { perMinute: 2, perHour: 100 }).allowed).toBe(false);
  });

  it('sweeps expired windows when it grows past its bound', () => {
    const c = clock();
    const windows = new LocalWindows(c.now, 10);
    for (let i = 0; i < 10; i++) windows.consume(`k${i}`, { perMinute: 5, perHour: 5 });
    c.advance(HOUR_MS);
    windows.consume('fresh', { perMinute: 5, perHour: 5 });
    expect(windows.size).toBe(2);
  });

  it('never lets more than min(limits) through in any single window (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 20 }),
        fc.integer({ min: 1, max: 40 }),
        fc.array(fc.integer({ min: 0, max: 5_000 }), { minLength: 1, maxLength: 200 }),
        (perMinute, perHour, gaps) => {
          const c = clock();
          const windows = new LocalWindows(c.now);
          let passedThisMinuteWindow = 0;
          let windowStart: number | undefined;
          for (const gap of gaps) {
            c.advance(gap);
            const d = windows.consume('k', { perMinute, perHour });
            if (!d.allowed) continue;
            if (d.minute.count === 1) {
              windowStart = c.now();
              passedThisMinuteWindow = 0;
            }
            passedThisMinuteWindow++;
            expect(c.now() - windowStart!).toBeLessThan(MINUTE_MS);
            expect(passedThisMinuteWindow).toBeLessThanOrEqual(perMinute);
            expect(d.hour.count).toBeLessThanOrEqual(perHour);
            const remaining = Number(rateLimitHeaders(d)['x-ratelimit-remaining-requests']);
            expect(remaining).toBe(Math.min(perMinute - d.minute.count, perHour - d.hour.count));
          }
        },
      ),
    );
  });
});

describe('rate limit headers', () => {
  it('reports the per-minute limit and the binding window', () => {
    const minuteBinds = toDecision(
      true,
      { perMinute: 10, perHour: 1000 },
      { count: 4, resetInMs: 12_000 },
      { count: 4, resetInMs: 3_000_000 },
      'redis',
    );
    expect(rateLimitHeaders(minuteBinds)).toEqual({
      'x-ratelimit-limit-requests': '10',
      'x-ratelimit-remaining-requests': '6',
      'x-ratelimit-reset-requests': '12s',
      'x-ratelimit-limit-requests-hour': '1000',
      'x-ratelimit-remaining-requests-hour': '996',
      'x-ratelimit-reset-requests-hour': '50m0s',
    });
    const hourBinds = toDecision(
      true,
      { perMinute: 10, perHour: 20 },
      { count: 1, resetInMs: 59_000 },
      { count: 18, resetInMs: 125_500 },
      'redis',
    );
    const headers = rateLimitHeaders(hourBinds);
    expect(headers['x-ratelimit-remaining-requests']).toBe('2');
    expect(headers['x-ratelimit-reset-requests']).toBe('2m6s');
    expect(headers['retry-after']).toBeUndefined();
  });

  it('waits for every full window before a retry can pass', () => {
    const both = toDecision(
      false,
      { perMinute: 2, perHour: 2 },
      { count: 2, resetInMs: 30_000 },
      { count: 2, resetInMs: 600_000 },
      'redis',
    );
    expect(both.scope).toBe('key_hour');
    expect(both.retryAfterMs).toBe(600_000);
  });

  it('formats resets and Retry-After in whole seconds, rounded up', () => {
    expect(formatReset(0)).toBe('0s');
    expect(formatReset(1)).toBe('1s');
    expect(formatReset(12_000)).toBe('12s');
    expect(formatReset(59_001)).toBe('60s');
    expect(formatReset(60_001)).toBe('1m1s');
    expect(formatReset(3_600_000)).toBe('1h0m0s');
    expect(retryAfterSeconds(0)).toBe(1);
    expect(retryAfterSeconds(1_001)).toBe(2);
    expect(retryAfterSeconds(40_000)).toBe(40);
  });
});
