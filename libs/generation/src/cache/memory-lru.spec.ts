import { MemoryLru } from './memory-lru';

describe('MemoryLru', () => {
  it('evicts the least recently used entries once over its byte bound', () => {
    const lru = new MemoryLru(3 * 2 * (2 + 10)); // room for three entries of key 2 + value 10
    lru.set('k1', 'x'.repeat(10), 60_000);
    lru.set('k2', 'x'.repeat(10), 60_000);
    lru.set('k3', 'x'.repeat(10), 60_000);
    expect(lru.get('k1')).toBeDefined(); // k1 is now the most recent
    lru.set('k4', 'x'.repeat(10), 60_000);
    expect(lru.get('k2')).toBeUndefined();
    expect(['k1', 'k3', 'k4'].every((k) => lru.get(k) !== undefined)).toBe(true);
    expect(lru.stats()).toEqual({ keys: 3, bytes: 3 * 2 * 12 });
  });

  it('expires entries after their TTL', () => {
    let now = 1000;
    const lru = new MemoryLru(1_000_000, () => now);
    lru.set('a', 'v', 500);
    expect(lru.get('a')).toBe('v');
    now += 500;
    expect(lru.get('a')).toBeUndefined();
    expect(lru.stats().keys).toBe(0);
  });

  it('replaces a value without double-counting its bytes, and refuses an entry larger than the bound', () => {
    const lru = new MemoryLru(100);
    lru.set('a', 'x'.repeat(10), 1000);
    lru.set('a', 'y'.repeat(10), 1000);
    expect(lru.stats()).toEqual({ keys: 1, bytes: 22 });
    lru.set('big', 'z'.repeat(100), 1000);
    expect(lru.get('big')).toBeUndefined();
    expect(lru.get('a')).toBe('y'.repeat(10));
  });

  it('deletes by predicate', () => {
    const lru = new MemoryLru(10_000);
    for (const k of ['rc:u.a:m:1', 'rc:u.b:m:2', 'rc:shared:m:3']) lru.set(k, 'v', 1000);
    expect(lru.deleteWhere((k) => k.startsWith('rc:u.a:'))).toBe(1);
    expect(lru.stats().keys).toBe(2);
  });
});
