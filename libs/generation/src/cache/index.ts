export { ResponseCacheModule } from './cache.module';
export { ResponseCacheService } from './response-cache.service';
export type {
  CacheLookup,
  CacheResult,
  CacheStats,
  CachePrincipal,
} from './response-cache.service';
export {
  replayChunks,
  replayAsSse,
  completionFromChunks,
  sseFrame,
  SSE_DONE,
} from './cache-replay';
export type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatMessage,
  ChatRequestBody,
} from './cache.types';
