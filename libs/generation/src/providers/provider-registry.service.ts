import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { CircuitBreakerService } from '@app/circuit-breaker';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ApiError, LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import { ProviderConfig } from './provider.types';
import { ProviderDefinition } from './providers-file';
import { ProvidersFileService } from './providers-file.service';
import { ProviderPatch, ProviderRow, ProvidersRepository } from './providers.repository';

const CHANGED_CHANNEL = 'providers:changed';
/** Safety net for a missed pub/sub message (e.g. during a Redis outage). */
const RELOAD_INTERVAL_MS = 30_000;

export interface ModelEntry {
  id: string;
  ownedBy: string;
}

/**
 * The providers the router may use, held in memory so the hot path never queries Postgres.
 * Loaded at boot (after writing PROVIDERS_FILE into the table), reloaded when an admin changes a
 * provider on any replica (pub/sub) and every 30 s.
 */
@Injectable()
export class ProviderRegistry implements OnModuleInit, OnApplicationShutdown {
  private providers: ProviderConfig[] = [];
  /** Enabled, configured providers per model, by priority. */
  private routes = new Map<string, ProviderConfig[]>();
  /** Every model some configured provider lists, enabled or not. */
  private knownModels = new Set<string>();
  private timer?: NodeJS.Timeout;
  private readonly listeners: ((providers: ProviderConfig[]) => void)[] = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly file: ProvidersFileService,
    private readonly repository: ProvidersRepository,
    private readonly breakers: CircuitBreakerService,
    private readonly redis: RedisService,
  ) {}

  async onModuleInit(): Promise<void> {
    await this.repository.syncFromFile(this.file.providers);
    await this.reload();
    this.logger.info(
      {
        file: this.file.file.path,
        providers: this.providers.map((p) => ({
          name: p.name,
          kind: p.kind,
          priority: p.priority,
          enabled: p.enabled,
        })),
      },
      'providers loaded',
    );
    const reload = () => void this.reload().catch(() => undefined);
    // A change announced while the subscriber was down is caught at its return, not 30 s later.
    this.redis.subscribe(CHANGED_CHANNEL, reload, reload);
    if (this.config.backgroundTasks) {
      this.timer = setInterval(reload, RELOAD_INTERVAL_MS);
      this.timer.unref();
    }
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Called after every reload (the upstream client pool uses it to drop stale clients). */
  onChange(listener: (providers: ProviderConfig[]) => void): void {
    this.listeners.push(listener);
  }

  async reload(): Promise<void> {
    let rows: ProviderRow[];
    try {
      rows = await this.repository.list();
    } catch (err) {
      this.logger.warn({ err }, 'could not reload providers; keeping the last known list');
      throw err;
    }
    const definitions = new Map(this.file.providers.map((d) => [d.name, d]));
    this.apply(rows.map((row) => toConfig(row, definitions.get(row.name))));
  }

  private apply(providers: ProviderConfig[]): void {
    const routes = new Map<string, ProviderConfig[]>();
    const known = new Set<string>();
    for (const p of providers) {
      if (!p.configured) continue;
      for (const model of p.models) {
        known.add(model);
        if (!p.enabled) continue;
        const list = routes.get(model) ?? [];
        list.push(p);
        routes.set(model, list);
      }
    }
    for (const list of routes.values()) list.sort((a, b) => a.priority - b.priority);
    this.providers = providers;
    this.routes = routes;
    this.knownModels = known;
    this.breakers.register(providers.map((p) => p.name));
    for (const listener of this.listeners) listener(providers);
  }

  list(): ProviderConfig[] {
    return this.providers;
  }

  byName(name: string): ProviderConfig | undefined {
    return this.providers.find((p) => p.name === name);
  }

  /**
   * The providers to try for a model, best first. Equal priorities are shuffled per request so
   * they share the load.
   */
  routesFor(model: string): ProviderConfig[] {
    const list = this.routes.get(model);
    if (!list || list.length === 0) {
      if (this.knownModels.has(model))
        throw ApiError.unavailable(
          `No enabled provider serves model '${model}' right now`,
          'model_unavailable',
        );
      throw ApiError.notFound(`The model '${model}' does not exist`, 'model_not_found', 'model');
    }
    const out: ProviderConfig[] = [];
    let i = 0;
    while (i < list.length) {
      let j = i;
      while (j < list.length && list[j].priority === list[i].priority) j++;
      const group = list.slice(i, j);
      for (let k = group.length - 1; k > 0; k--) {
        const r = Math.floor(Math.random() * (k + 1));
        [group[k], group[r]] = [group[r], group[k]];
      }
      out.push(...group);
      i = j;
    }
    return out;
  }

  /** Models served by at least one enabled provider, with the preferred provider's name. */
  models(): ModelEntry[] {
    return [...this.routes.entries()]
      .map(([id, providers]) => ({ id, ownedBy: providers[0].name }))
      .sort((a, b) => a.id.localeCompare(b.id));
  }

  async update(id: string, patch: ProviderPatch): Promise<ProviderConfig | null> {
    const row = await this.repository.update(id, patch);
    if (!row) return null;
    await this.reload().catch(() => undefined);
    await this.redis.publish(CHANGED_CHANNEL, row.name);
    return this.byName(row.name) ?? null;
  }
}

function toConfig(row: ProviderRow, def: ProviderDefinition | undefined): ProviderConfig {
  return {
    id: row.id,
    name: row.name,
    kind: row.kind,
    baseUrl: row.base_url,
    apiKey: def?.api_key ? def.api_key : undefined,
    sessionAuth: row.session_auth,
    priority: row.priority,
    enabled: row.enabled,
    models: row.models,
    timeoutMs: row.timeout_ms,
    mock: row.settings?.mock ?? {},
    configured: def !== undefined,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
