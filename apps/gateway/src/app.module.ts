import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import type { Logger } from 'pino';
import { AuthModule } from '@app/auth';
import { AppConfig, ConfigModule } from '@app/config';
import { CreditsModule, CreditsPipelineModule } from '@app/credits';
import { DatabaseModule } from '@app/database';
import { ConversationsModule, GenerationModule, ResponseCacheModule } from '@app/generation';
import { HealthModule } from '@app/health';
import { JobsModule } from '@app/jobs';
import { ApiExceptionFilter, ObservabilityModule } from '@app/observability';
import { RateLimitModule } from '@app/rate-limit';
import { RedisModule } from '@app/redis';
import { SessionsModule } from '@app/sessions';
import { AdminConsoleModule } from './admin-console/admin-console.module';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig, logger: Logger): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        ObservabilityModule.forRoot(logger),
        DatabaseModule,
        RedisModule,
        HealthModule,
        RateLimitModule,
        AuthModule,
        CreditsModule,
        GenerationModule,
        ConversationsModule,
        ResponseCacheModule,
        CreditsPipelineModule,
        SessionsModule,
        JobsModule,
        AdminConsoleModule,
      ],
      providers: [{ provide: APP_FILTER, useClass: ApiExceptionFilter }],
    };
  }
}
