import { Module } from '@nestjs/common';
import { CacheAdminController } from './cache-admin.controller';
import { ResponseCacheService } from './response-cache.service';

@Module({
  controllers: [CacheAdminController],
  providers: [ResponseCacheService],
  exports: [ResponseCacheService],
})
export class ResponseCacheModule {}
