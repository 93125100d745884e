import { Module } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { GenerationModule } from '@app/generation';
import { LOGGER } from '@app/observability';
import { SessionCredentialSource } from './session-credential-source';
import { SessionCredentials } from './session-credentials';
import { SessionHealthCheckService } from './session-health-check.service';
import { createSessionCipher, SESSION_CIPHER } from './session-key';
import { SessionPoolService } from './session-pool.service';
import { SessionsController } from './sessions.controller';
import { SessionsRepository } from './sessions.repository';
import { SessionsService } from './sessions.service';

/** The upstream credential pool: storage, rotation, health and its admin API. */
@Module({
  imports: [GenerationModule],
  controllers: [SessionsController],
  providers: [
    {
      provide: SESSION_CIPHER,
      inject: [APP_CONFIG, LOGGER],
      useFactory: (config: AppConfig, logger: Logger) =>
        createSessionCipher(config.sessions, logger),
    },
    SessionsRepository,
    SessionCredentials,
    SessionPoolService,
    SessionHealthCheckService,
    SessionsService,
    SessionCredentialSource,
  ],
  exports: [SessionPoolService, SessionsService],
})
export class SessionsModule {}
