import type Redis from 'ioredis';
import { KeyValueStore } from './key-value-store';

const INCR_WITH_TTL = `
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
return {v, ttl}`;

export class RedisStore implements KeyValueStore {
  constructor(
    private readonly client: Redis,
    private readonly keyPrefix: string,
  ) {}

  async get(key: string): Promise<string | null> {
    return this.client.get(key);
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    if (ttlMs) await this.client.set(key, value, 'PX', ttlMs);
    else await this.client.set(key, value);
  }

  async del(...keys: string[]): Promise<number> {
    return keys.length === 0 ? 0 : this.client.del(...keys);
  }

  async incrBy(key: string, by: number, ttlMs: number): Promise<{ value: number; ttlMs: number }> {
    const [value, ttl] = (await this.client.eval(INCR_WITH_TTL, 1, key, by, ttlMs)) as [
      number,
      number,
    ];
    return { value, ttlMs: ttl };
  }

  /** SCAN patterns are not prefixed by ioredis, so the client's key prefix is added here. */
  private async scan(prefix: string, onKeys: (keys: string[]) => Promise<void>): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = await this.client.scan(
        cursor,
        'MATCH',
        `${this.keyPrefix}${prefix}*`,
        'COUNT',
        500,
      );
      cursor = next;
      if (keys.length > 0) await onKeys(keys.map((k) => k.slice(this.keyPrefix.length)));
    } while (cursor !== '0');
  }

  async deleteByPrefix(prefix: string): Promise<number> {
    let removed = 0;
    await this.scan(prefix, async (keys) => {
      removed += await this.client.del(...keys);
    });
    return removed;
  }

  async countByPrefix(prefix: string): Promise<number> {
    let count = 0;
    await this.scan(prefix, async (keys) => {
      count += keys.length;
    });
    return count;
  }
}
