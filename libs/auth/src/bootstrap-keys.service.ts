import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { DatabaseService } from '@app/database';
import { LOGGER } from '@app/observability';
import { ApiKeyCache } from './api-key-cache.service';
import { ApiKeyRepository } from './api-key.repository';
import { ALL_SCOPES } from './api-key.types';
import { displayPrefix, hashApiKey } from './api-key.util';
import { AuditService } from './audit.service';
import { CreditGrantRepository } from './credit-grant.repository';
import { BOOTSTRAP_USERNAME } from './user.types';
import { UsersRepository } from './users.repository';

/** Name of the api_keys rows that mirror API_KEYS; only these are managed from the env. */
export const BOOTSTRAP_KEY_NAME = 'API_KEYS';
export const BOOTSTRAP_GRANT_KEY = 'bootstrap-grant';

/**
 * Mirrors API_KEYS into api_keys rows of the built-in `bootstrap` user at boot: new entries are
 * inserted (by hash, so concurrent replicas agree), entries no longer listed are revoked — the
 * seed 000 rotation (list old and new, restart, later drop the old one, restart). A key revoked
 * through the admin API stays revoked even if it is still listed.
 */
@Injectable()
export class BootstrapKeysService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly db: DatabaseService,
    private readonly users: UsersRepository,
    private readonly keys: ApiKeyRepository,
    private readonly grants: CreditGrantRepository,
    private readonly cache: ApiKeyCache,
    private readonly audit: AuditService,
  ) {}

  async sync(): Promise<void> {
    const listed = [...new Set(this.config.auth.bootstrapKeys)];
    const existing = await this.users.findByUsername(BOOTSTRAP_USERNAME);
    if (listed.length === 0 && !existing) return;
    const user =
      existing ??
      (await this.users.ensure({
        username: BOOTSTRAP_USERNAME,
        email: null,
        role: 'user',
        passwordHash: null,
      }));
    const hashes = listed.map(hashApiKey);
    for (const [i, key] of listed.entries()) {
      await this.keys.upsertByHash({
        userId: user.id,
        name: BOOTSTRAP_KEY_NAME,
        prefix: displayPrefix(key),
        keyHash: hashes[i],
        scopes: [...ALL_SCOPES],
        rateLimitPerMinute: null,
        rateLimitPerHour: null,
        cacheScope: 'user',
        expiresAt: null,
      });
    }
    const dropped = await this.keys.revokeOthersByName(user.id, BOOTSTRAP_KEY_NAME, hashes);
    for (const key of dropped) {
      await this.audit.record('system', 'api_key.revoke', key.id, {
        reason: 'no longer listed in API_KEYS',
        prefix: key.prefix,
      });
    }
    if (dropped.length > 0) {
      this.logger.warn(
        { revoked: dropped.map((k) => k.prefix) },
        'bootstrap keys no longer in API_KEYS were revoked',
      );
      await this.cache.invalidate({ ids: dropped.map((k) => k.id) });
    }
    if (listed.length === 0) return;
    await this.cache.invalidate({ hashes });
    const granted = await this.db.transaction(
      (tx) =>
        this.grants.grantOnce(tx, {
          userId: user.id,
          amount: this.config.auth.bootstrapCredits,
          idempotencyKey: BOOTSTRAP_GRANT_KEY,
          description: 'Bootstrap credits (BOOTSTRAP_CREDITS)',
        }),
      'bootstrap_grant',
    );
    if (granted)
      this.logger.info(
        { credits: this.config.auth.bootstrapCredits },
        'bootstrap user granted its credits',
      );
    this.logger.info({ keys: listed.length }, 'bootstrap API keys loaded from API_KEYS');
  }
}
