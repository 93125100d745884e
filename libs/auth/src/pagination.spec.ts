import { ApiError } from '@app/observability';
import { decodeCursor, parseLimit, toPage } from './pagination';

describe('pagination', () => {
  const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

  it('returns next_cursor only when an extra row exists, and the cursor decodes to the last id', () => {
    const rows = [1, 2, 3].map((n) => ({ id: id(n) }));
    const page = toPage(rows, 2, (r) => r.id);
    expect(page.data).toEqual([id(1), id(2)]);
    expect(decodeCursor(page.next_cursor!)).toBe(id(2));
    expect(toPage(rows.slice(0, 2), 2, (r) => r.id).next_cursor).toBeNull();
  });

  it('rejects bad limits and cursors with 400 naming the parameter', () => {
    for (const bad of ['0', '-1', '1.5', 'abc', '201']) {
      try {
        parseLimit(bad);
        throw new Error('accepted');
      } catch (err) {
        expect(err).toBeInstanceOf(ApiError);
        expect((err as ApiError).param).toBe('limit');
      }
    }
    expect(parseLimit(undefined)).toBe(50);
    expect(parseLimit('200')).toBe(200);
    expect(() => decodeCursor('not-a-cursor')).toThrow(ApiError);
    expect(decodeCursor(undefined)).toBeUndefined();
  });
});
