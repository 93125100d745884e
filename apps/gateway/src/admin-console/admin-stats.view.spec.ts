import { parseWindow, reuseMs } from './admin-stats.params';
import { breakersView, fillMinutes, sessionsView, trafficView } from './admin-stats.view';

describe('admin stats views', () => {
  const now = new Date('2026-01-01T10:04:30Z');

  it('fills missing minutes with zeros, oldest first, ending at the minute of now', () => {
    const points = fillMinutes(
      [
        { at: new Date('2026-01-01T10:01:00Z'), requests: 4, errors: 1 },
        { at: new Date('2026-01-01T10:04:00Z'), requests: 2, errors: 0 },
      ],
      now,
      5,
    );
    expect(points).toEqual([
      { at: '2026-01-01T10:00:00.000Z', requests: 0, errors: 0 },
      { at: '2026-01-01T10:01:00.000Z', requests: 4, errors: 1 },
      { at: '2026-01-01T10:02:00.000Z', requests: 0, errors: 0 },
      { at: '2026-01-01T10:03:00.000Z', requests: 0, errors: 0 },
      { at: '2026-01-01T10:04:00.000Z', requests: 2, errors: 0 },
    ]);
  });

  it('drops buckets outside the series', () => {
    const points = fillMinutes(
      [{ at: new Date('2026-01-01T09:00:00Z'), requests: 9, errors: 9 }],
      now,
      3,
    );
    expect(points.reduce((s, p) => s + p.requests, 0)).toBe(0);
  });

  it('computes rates as null (not 0 or NaN) when nothing happened', () => {
    const view = trafficView(
      {
        requests: 0,
        errors: 0,
        clientErrors: 0,
        rateLimited: 0,
        cached: 0,
        chatAnswered: 0,
        creditsSpent: 0,
        p50Ms: null,
        p95Ms: null,
        p99Ms: null,
        now,
      },
      300,
      [],
      [],
    );
    expect(view).toMatchObject({ requests_per_minute: 0, error_rate: null, cache_hit_rate: null });
    expect(view.series.points).toHaveLength(30);
  });

  it('computes error rate over all requests and cache hits over answered chat requests', () => {
    const view = trafficView(
      {
        requests: 40,
        errors: 2,
        clientErrors: 6,
        rateLimited: 1,
        cached: 9,
        chatAnswered: 30,
        creditsSpent: 120,
        p50Ms: 12,
        p95Ms: 80.5,
        p99Ms: 120,
        now,
      },
      600,
      [],
      [],
    );
    expect(view.error_rate).toBe(0.05);
    expect(view.cache_hit_rate).toBe(0.3);
    expect(view.requests_per_minute).toBe(4);
  });

  it('counts breakers by state and sessions by status across providers', () => {
    const breakers = breakersView([
      {
        name: 'a',
        state: 'open',
        failures: 5,
        successRate: 0,
        p95LatencyMs: null,
        openedAt: null,
        nextAttemptAt: null,
        forced: false,
        samples: 0,
      },
      {
        name: 'b',
        state: 'closed',
        failures: 0,
        successRate: 1,
        p95LatencyMs: 3,
        openedAt: null,
        nextAttemptAt: null,
        forced: false,
        samples: 9,
      },
    ]);
    expect(breakers).toMatchObject({ open: 1, closed: 1, half_open: 0 });
    const sessions = sessionsView({
      grok: { healthy: 2, quarantined: 1, expired: 0, disabled: 0 },
      other: { healthy: 1, quarantined: 0, expired: 3, disabled: 1 },
    });
    expect(sessions.by_status).toEqual({ healthy: 3, quarantined: 1, expired: 3, disabled: 1 });
  });

  it('accepts windows from 60 s to a day and refuses anything else', () => {
    expect(parseWindow(undefined)).toBe(300);
    expect(parseWindow('60')).toBe(60);
    expect(parseWindow('86400')).toBe(86400);
    for (const bad of ['59', '86401', '-5', '1e3', ' 60', 'x'])
      expect(() => parseWindow(bad)).toThrow(/window_seconds/);
  });
});

describe('admin stats reuse period', () => {
  it('is 2 s for short windows and grows with the window up to a minute', () => {
    expect(reuseMs(60)).toBe(2_000);
    expect(reuseMs(300)).toBe(3_000);
    expect(reuseMs(3600)).toBe(36_000);
    expect(reuseMs(86_400)).toBe(60_000);
  });
});
