export { RedisModule } from './redis.module';
export { RedisService } from './redis.service';
export type { RedisMode } from './redis.service';
export type { KeyValueStore } from './key-value-store';
export { MemoryStore } from './memory-store';
