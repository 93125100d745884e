import { KeyValueStore } from './key-value-store';

interface Entry {
  value: string;
  expiresAt: number; // ms epoch; Infinity when no TTL
}

/**
 * Per-process stand-in for Redis. Bounded: beyond `maxEntries` the oldest insertions go first,
 * so a long Redis outage cannot grow memory without limit.
 */
export class MemoryStore implements KeyValueStore {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly maxEntries = 100_000) {}

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private put(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  async get(key: string): Promise<string | null> {
    return this.live(key)?.value ?? null;
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.put(key, { value, expiresAt: ttlMs ? Date.now() + ttlMs : Infinity });
  }

  async del(...keys: string[]): Promise<number> {
    let removed = 0;
    for (const key of keys) if (this.entries.delete(key)) removed++;
    return removed;
  }

  incrBySync(key: string, by: number, ttlMs: number): { value: number; ttlMs: number } {
    const now = Date.now();
    const entry = this.live(key);
    if (!entry) {
      this.put(key, { value: String(by), expiresAt: now + ttlMs });
      return { value: by, ttlMs };
    }
    const value = Number(entry.value) + by;
    entry.value = String(value);
    return { value, ttlMs: entry.expiresAt - now };
  }

  async incrBy(key: string, by: number, ttlMs: number): Promise<{ value: number; ttlMs: number }> {
    return this.incrBySync(key, by, ttlMs);
  }

  async deleteByPrefix(prefix: string): Promise<number> {
    let removed = 0;
    for (const key of [...this.entries.keys()]) {
      if (key.startsWith(prefix)) {
        this.entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  async countByPrefix(prefix: string): Promise<number> {
    let count = 0;
    for (const key of this.entries.keys()) if (key.startsWith(prefix) && this.live(key)) count++;
    return count;
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}
