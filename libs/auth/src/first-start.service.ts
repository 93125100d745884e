import { randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { ApiKeysService } from './api-keys.service';
import { ADMIN_USERNAME } from './user.types';
import { UsersRepository } from './users.repository';
import { UsersService } from './users.service';

export const DEV_USERNAME = 'dev';
export const DEV_CREDITS = 100_000;

/** Where the one-time credentials go; stdout by default, replaceable in tests. */
export const CREDENTIALS_OUTPUT = Symbol('CREDENTIALS_OUTPUT');
export type CredentialsOutput = (text: string) => void;

/**
 * Embedded first start: a newcomer runs `npm start` and can log in and send a request at once.
 * Only in embedded mode, never in production, only when the database has no users at all. The
 * credentials are printed once to stdout, not through the logger: log pipelines must never
 * receive secrets (and the logger would redact them anyway).
 */
@Injectable()
export class FirstStartService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(CREDENTIALS_OUTPUT) private readonly output: CredentialsOutput,
    private readonly usersRepository: UsersRepository,
    private readonly users: UsersService,
    private readonly keys: ApiKeysService,
  ) {}

  /** Call before anything creates users (the bootstrap user counts as one). */
  async isFirstStart(): Promise<boolean> {
    // The CLI (no background tasks) is not a "start": it must not print development credentials.
    if (!this.config.database.embedded || this.config.production || !this.config.backgroundTasks)
      return false;
    return (await this.usersRepository.count()) === 0;
  }

  async createDevelopmentCredentials(): Promise<void> {
    const password = randomBytes(18).toString('base64url');
    await this.users.setAdminPassword(ADMIN_USERNAME, password, 'system');
    const dev = await this.users.create(
      { username: DEV_USERNAME, role: 'user', baseQuota: DEV_CREDITS },
      'system',
    );
    const issued = await this.keys.create({ userId: dev.id, name: 'development' }, 'system');
    const port = this.config.http.port;
    const rule = '='.repeat(78);
    this.output(
      [
        '',
        rule,
        '  DEVELOPMENT CREDENTIALS - shown once, for local use only (embedded mode)',
        rule,
        `  Admin login : username "${ADMIN_USERNAME}", password "${password}"`,
        `                curl -X POST http://localhost:${port}/auth/token -d 'username=${ADMIN_USERNAME}&password=${password}'`,
        `  API key     : ${issued.key}`,
        `                (user "${DEV_USERNAME}", ${DEV_CREDITS} credits, scopes ${issued.scopes.join(', ')})`,
        '  Keep them now: they are not stored in clear anywhere and will not be shown again.',
        '  Reset the admin password with: ADMIN_PASSWORD=... npm run cli -- create-admin',
        rule,
        '',
      ].join('\n'),
    );
    this.logger.warn(
      { admin: ADMIN_USERNAME, dev_user: DEV_USERNAME, key_prefix: issued.prefix },
      'embedded first start: development credentials created and printed to stdout',
    );
  }
}
