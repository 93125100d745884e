interface Entry {
  value: string;
  bytes: number;
  expiresAt: number;
}

/**
 * The response cache's per-process store, used without Redis and during an outage. Bounded by
 * bytes (responses vary from a few hundred bytes to megabytes) and least-recently-used first, so
 * hot entries survive. It is separate from RedisService.memory on purpose: large cached answers
 * must not evict the small rate-limit, breaker and conversation entries kept there.
 */
export class MemoryLru {
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.remove(key, entry);
      return undefined;
    }
    // Re-insert to mark as most recently used (Map keeps insertion order).
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry.value;
  }

  set(key: string, value: string, ttlMs: number): void {
    const bytes = (key.length + value.length) * 2;
    const existing = this.entries.get(key);
    if (existing) this.remove(key, existing);
    if (bytes > this.maxBytes) return;
    this.entries.set(key, { value, bytes, expiresAt: this.now() + ttlMs });
    this.totalBytes += bytes;
    for (const [oldKey, oldEntry] of this.entries) {
      if (this.totalBytes <= this.maxBytes) break;
      this.remove(oldKey, oldEntry);
    }
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.totalBytes -= entry.bytes;
  }

  deleteWhere(predicate: (key: string) => boolean): number {
    let removed = 0;
    for (const [key, entry] of this.entries) {
      if (predicate(key)) {
        this.remove(key, entry);
        removed++;
      }
    }
    return removed;
  }

  stats(): { keys: number; bytes: number } {
    const at = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= at) this.remove(key, entry);
    return { keys: this.entries.size, bytes: this.totalBytes };
  }
}
