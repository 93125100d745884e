/**
 * The small store that cache, rate limits, conversations and breakers build on. One
 * implementation talks to Redis, one keeps state in this process.
 */
export interface KeyValueStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  del(...keys: string[]): Promise<number>;
  /** Adds `by` to a counter; the TTL is set when the counter is created. */
  incrBy(key: string, by: number, ttlMs: number): Promise<{ value: number; ttlMs: number }>;
  /** Deletes every key that starts with `prefix`; returns how many went. */
  deleteByPrefix(prefix: string): Promise<number>;
  countByPrefix(prefix: string): Promise<number>;
}
