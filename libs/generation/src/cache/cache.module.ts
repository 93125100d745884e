import { Module } from '@nestjs/common';
import { GenerationModule } from '../generation.module';
import { CacheAdminController } from './cache-admin.controller';
import { ResponseCachePlugin } from './cache.plugin';
import { ResponseCacheService } from './response-cache.service';

/** Registers the cache in the chat pipeline (see ResponseCachePlugin) and serves /admin/cache. */
@Module({
  imports: [GenerationModule],
  controllers: [CacheAdminController],
  providers: [ResponseCacheService, ResponseCachePlugin],
  exports: [ResponseCacheService],
})
export class ResponseCacheModule {}
