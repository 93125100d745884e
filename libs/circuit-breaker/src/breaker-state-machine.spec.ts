import { effectiveState, windowStats } from './breaker-state-machine';
import { CLOSED_RECORD } from './breaker.types';

describe('breaker reads', () => {
  it('reads an open breaker whose open period has elapsed as half_open', () => {
    const open = { ...CLOSED_RECORD, state: 'open' as const, openedAt: 0, openUntil: 1000 };
    expect(effectiveState(open, 999)).toBe('open');
    expect(effectiveState(open, 1000)).toBe('half_open');
    expect(effectiveState(CLOSED_RECORD, 1000)).toBe('closed');
  });

  it('computes success rate and nearest-rank p95 over the recent window only', () => {
    const samples = Array.from({ length: 20 }, (_, i) => ({
      at: 10_000 + i,
      latencyMs: (i + 1) * 10,
      ok: i % 4 !== 0,
    }));
    samples.push({ at: 0, latencyMs: 99_999, ok: false }); // outside the window
    expect(windowStats(samples, 10_100, 1000)).toEqual({
      successRate: 0.75,
      p95LatencyMs: 190,
      samples: 20,
    });
    expect(windowStats([], 0, 1000)).toEqual({ successRate: null, p95LatencyMs: null, samples: 0 });
  });
});
