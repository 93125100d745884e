import { Inject, Injectable, OnApplicationShutdown, OnModuleInit, Optional } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import { parsePricing, readPricingFile } from './pricing-file';
import { isFree, maxChatUsage, maxImageUsage, ModelPrice, priceOf, Usage } from './pricing.math';
import { PricingRepository, StoredPrice } from './pricing.repository';

/** Replicas tell each other to reload prices after an admin edit. */
const PRICING_CHANNEL = 'credits:pricing-changed';
/** Safety net for a missed pub/sub message (Redis down at that moment). */
const REFRESH_INTERVAL_MS = 60_000;

export type BillableKind = 'chat' | 'image';

/**
 * Prices per model, served from memory on the hot path. Loaded from PROVIDERS_FILE into the
 * pricing table at boot, editable by admins; an edit reloads every replica through Redis
 * pub/sub (and a periodic reload covers a message lost while Redis was away).
 */
@Injectable()
export class PricingService implements OnModuleInit, OnApplicationShutdown {
  private prices = new Map<string, StoredPrice>();
  private timer?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly repository: PricingRepository,
    private readonly redis: RedisService,
    @Optional() private readonly moduleRef?: ModuleRef,
  ) {}

  async onModuleInit(): Promise<void> {
    const file =
      (await this.fromProvidersFileService()) ?? readPricingFile(this.config.providersFile);
    if (!file.found) {
      this.logger.warn(
        { file: this.config.providersFile },
        'PROVIDERS_FILE not found: pricing comes only from the database (models without a price are free)',
      );
    } else {
      await this.repository.syncFromFile(file.prices);
    }
    await this.refresh();
    this.logger.info({ models: this.prices.size }, 'pricing loaded');
    const reload = () => {
      this.refresh().catch((err) =>
        this.logger.warn({ err: (err as Error).message }, 'pricing reload failed'),
      );
    };
    // A change announced while the subscriber was down is caught at its return, not 60 s later.
    this.redis.subscribe(PRICING_CHANNEL, reload, reload);
    if (this.config.backgroundTasks) {
      this.timer = setInterval(() => {
        this.refresh().catch(() => undefined);
      }, REFRESH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /**
   * The `pricing:` section as the generation module read PROVIDERS_FILE at boot (its path
   * resolution and `${VAR}` substitution), so that prices and providers can never come from two
   * different files. Undefined when that module is not part of this application.
   */
  private async fromProvidersFileService(): Promise<
    { found: boolean; prices: ReturnType<typeof parsePricing> } | undefined
  > {
    if (!this.moduleRef) return undefined;
    // Imported here, not at the top: libs/generation imports this library (the cache bills
    // its hits), and a top-level import would load one of them half-way.
    const { ProvidersFileService } = await import('@app/generation');
    let service: InstanceType<typeof ProvidersFileService>;
    try {
      service = this.moduleRef.get(ProvidersFileService, { strict: false });
    } catch {
      return undefined;
    }
    return { found: true, prices: parsePricing(service.pricing, service.file.path) };
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async refresh(): Promise<void> {
    const rows = await this.repository.list();
    this.prices = new Map(rows.map((p) => [p.model, p]));
  }

  priceFor(model: string): ModelPrice | undefined {
    return this.prices.get(model);
  }

  /** A model with no price (or only zero prices) is free: no reservation, no ledger rows. */
  isBillable(model: string): boolean {
    return !isFree(this.prices.get(model));
  }

  /**
   * What an answer of `model` from the response cache costs: CACHE_HIT_PRICE, or nothing for a
   * free model (a repeat must not cost what the answer it repeats did not, nor answer 402).
   */
  cacheHitPrice(model: string): number {
    return this.isBillable(model) ? this.config.cache.hitPrice : 0;
  }

  /** What `usage` of `model` costs, in whole credits (0 for a free model). */
  priceOf(model: string, usage: Usage): number {
    const price = this.prices.get(model);
    return price && !isFree(price) ? priceOf(price, usage) : 0;
  }

  /** The most a request can cost, from max_tokens / n / size (what a reservation holds). */
  maxPriceOf(model: string, kind: BillableKind, body: Record<string, unknown>): number {
    return this.priceOf(model, kind === 'chat' ? maxChatUsage(body) : maxImageUsage(body));
  }

  async list(): Promise<StoredPrice[]> {
    return this.repository.list();
  }

  async set(price: ModelPrice): Promise<StoredPrice> {
    const stored = await this.repository.upsertAdmin(price);
    await this.changed();
    return stored;
  }

  async remove(model: string): Promise<boolean> {
    const removed = await this.repository.delete(model);
    if (removed) await this.changed();
    return removed;
  }

  private async changed(): Promise<void> {
    await this.refresh();
    await this.redis.publish(PRICING_CHANNEL, String(Date.now()));
  }
}
