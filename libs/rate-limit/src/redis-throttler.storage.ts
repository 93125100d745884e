import { ThrottlerStorage } from '@nestjs/throttler';
import { KeyValueStore } from '@app/redis';

type ThrottlerStorageRecord = Awaited<ReturnType<ThrottlerStorage['increment']>>;

/**
 * @nestjs/throttler storage on the shared store: one atomic INCR-with-TTL per hit (Redis when up,
 * per-process memory during an outage), so /auth/token limits hold across replicas. The block
 * lasts until the window ends; throttler's separate blockDuration is not used.
 */
export class RedisThrottlerStorage implements ThrottlerStorage {
  constructor(private readonly store: KeyValueStore) {}

  async increment(
    key: string,
    ttl: number,
    limit: number,
    _blockDuration: number,
    throttlerName: string,
  ): Promise<ThrottlerStorageRecord> {
    const { value, ttlMs } = await this.store.incrBy(`throttle:${throttlerName}:${key}`, 1, ttl);
    const seconds = Math.max(1, Math.ceil(ttlMs / 1000));
    const isBlocked = value > limit;
    return {
      totalHits: value,
      timeToExpire: seconds,
      isBlocked,
      timeToBlockExpire: isBlocked ? seconds : 0,
    };
  }
}
