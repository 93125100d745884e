import { SuccessBuffer } from './success-buffer';

describe('SuccessBuffer', () => {
  it('keeps successes per breaker, oldest first, and counts them all', () => {
    const buffer = new SuccessBuffer();
    expect(buffer.add('a', { at: 1, latencyMs: 10 })).toBe(1);
    expect(buffer.add('b', { at: 2, latencyMs: 20 })).toBe(2);
    expect(buffer.add('a', { at: 3, latencyMs: 30 })).toBe(3);
    expect(buffer.take('a')).toEqual([
      { at: 1, latencyMs: 10 },
      { at: 3, latencyMs: 30 },
    ]);
    expect(buffer.size).toBe(1);
    expect(buffer.take('a')).toEqual([]);
    expect(buffer.takeAll()).toEqual([['b', [{ at: 2, latencyMs: 20 }]]]);
    expect(buffer.size).toBe(0);
    expect(buffer.takeAll()).toEqual([]);
  });
});
