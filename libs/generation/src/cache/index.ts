export { ResponseCacheModule } from './cache.module';
export { ResponseCacheService } from './response-cache.service';
export type {
  CacheLookup,
  CacheResult,
  CacheStats,
  CachePrincipal,
} from './response-cache.service';
