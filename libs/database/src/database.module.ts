import { Global, Module } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { DatabaseService } from './database.service';
import { RequestLogWriter } from './request-log.writer';

/**
 * The service is built by an async factory so that the pool is connected and migrated before
 * any other module's onModuleInit runs a query.
 */
@Global()
@Module({
  providers: [
    {
      provide: DatabaseService,
      inject: [APP_CONFIG, LOGGER],
      useFactory: async (config: AppConfig, logger: Logger) => {
        const service = new DatabaseService(config, logger);
        await service.connect();
        return service;
      },
    },
    RequestLogWriter,
  ],
  exports: [DatabaseService, RequestLogWriter],
})
export class DatabaseModule {}
