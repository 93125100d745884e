import { Module } from '@nestjs/common';
import { GenerationModule } from '../generation.module';
import { CacheAdminController } from './cache-admin.controller';
import { CachePrefetchAdmission } from './cache-prefetch.admission';
import { ResponseCachePlugin } from './cache.plugin';
import { ResponseCacheService } from './response-cache.service';

/**
 * Registers the cache in the chat pipeline (see ResponseCachePlugin), starts chat completions'
 * reads with the rate-limit check (CachePrefetchAdmission), and serves /admin/cache.
 */
@Module({
  imports: [GenerationModule],
  controllers: [CacheAdminController],
  providers: [ResponseCacheService, ResponseCachePlugin, CachePrefetchAdmission],
  exports: [ResponseCacheService],
})
export class ResponseCacheModule {}
