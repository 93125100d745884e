import { nestingExceeds } from './http-hardening';

describe('nestingExceeds (JSON depth before parsing)', () => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);

  it('counts arrays and objects, and stops at the cap', () => {
    expect(nestingExceeds(deep(64), 64)).toBe(false);
    expect(nestingExceeds(deep(65), 64)).toBe(true);
    expect(nestingExceeds('{"a":{"b":[{"c":1}]}}', 4)).toBe(false);
    expect(nestingExceeds('{"a":{"b":[{"c":[1]}]}}', 4)).toBe(true);
    expect(nestingExceeds('[' + '[],'.repeat(10_000) + '[]]', 2)).toBe(false);
  });

  it('ignores brackets inside strings, escaped quotes included', () => {
    expect(nestingExceeds(JSON.stringify({ content: '[[[[[[[[{{{{{{' }), 1)).toBe(false);
    expect(nestingExceeds(JSON.stringify({ content: 'say \\"[[[[\\" and "{{{"' }), 1)).toBe(false);
    expect(nestingExceeds(JSON.stringify({ a: 'x\\', b: [[1]] }), 2)).toBe(true);
  });

  it('handles a hostile 10 MiB body (a quadratic scan would time the test out)', () => {
    expect(nestingExceeds(deep(5 * 1024 * 1024), 64)).toBe(true);
    expect(nestingExceeds('"' + 'x'.repeat(10 * 1024 * 1024) + '"', 64)).toBe(false);
  });
});
