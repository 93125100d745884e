import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnModuleDestroy,
  OnModuleInit,
} from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { ApiKeyRepository } from './api-key.repository';

const FLUSH_INTERVAL_MS = 5_000;

/**
 * last_used_at is written in batches: requests only note the time in memory, and one UPDATE
 * every few seconds writes them all, so authentication never waits for a write.
 */
@Injectable()
export class ApiKeyUsage implements OnModuleInit, OnModuleDestroy, BeforeApplicationShutdown {
  private pending = new Map<string, Date>();
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;

  constructor(
    private readonly repository: ApiKeyRepository,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    if (!this.config.backgroundTasks) return;
    this.timer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  touch(apiKeyId: string, at = new Date()): void {
    this.pending.set(apiKeyId, at);
  }

  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = this.repository
      .touchLastUsed(batch)
      .catch((err) => {
        // Put the batch back (newer touches win) so the next round retries it.
        for (const [id, at] of batch) if (!this.pending.has(id)) this.pending.set(id, at);
        this.logger.warn({ err: (err as Error).message }, 'could not record api key usage');
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  onModuleDestroy(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.flush();
  }
}
