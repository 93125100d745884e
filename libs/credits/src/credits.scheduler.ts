import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { CreditsService } from './credits.service';
import { IdempotencyService } from './idempotency.service';

const CYCLE_CHECK_MS = 60_000;
const IDEMPOTENCY_SWEEP_MS = 3600_000;

/**
 * Background credit upkeep: billing-cycle resets (one replica per round, through a Postgres
 * advisory lock; per-cycle ledger keys make a second run a no-op anyway) and the removal of
 * expired Idempotency-Key records. Off in the CLI.
 */
@Injectable()
export class CreditsScheduler implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer?: NodeJS.Timeout;
  private lastSweep = 0;
  private running = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly credits: CreditsService,
    private readonly idempotency: IdempotencyService,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.backgroundTasks) return;
    this.timer = setInterval(() => void this.tick(), CYCLE_CHECK_MS);
    this.timer.unref();
    void this.tick();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async tick(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.credits.cycleReset();
      if (Date.now() - this.lastSweep >= IDEMPOTENCY_SWEEP_MS) {
        const removed = await this.idempotency.deleteExpired();
        this.lastSweep = Date.now();
        if (removed > 0) this.logger.info({ removed }, 'expired idempotency keys removed');
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'credits maintenance round failed');
    } finally {
      this.running = false;
    }
  }
}
