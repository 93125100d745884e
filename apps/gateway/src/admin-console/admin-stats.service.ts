import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { CircuitBreakerService } from '@app/circuit-breaker';
import { ResponseCacheService } from '@app/generation';
import { JobsService } from '@app/jobs';
import { LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import { SessionPoolService } from '@app/sessions';
import {
  breakersView,
  cacheView,
  queueView,
  SERIES_MINUTES,
  sessionsView,
  TrafficView,
  trafficView,
} from './admin-stats.view';
import { reuseMs } from './admin-stats.params';
import { RequestTrafficRepository } from './request-traffic.repository';

export interface AdminStats {
  generated_at: string;
  window_seconds: number;
  traffic: TrafficView | null;
  cache: ReturnType<typeof cacheView> | null;
  sessions: ReturnType<typeof sessionsView> | null;
  breakers: ReturnType<typeof breakersView> | null;
  queue: ReturnType<typeof queueView> | null;
  redis: { mode: string };
  /** Sections that could not be read right now (e.g. the database is down); they are null. */
  unavailable: string[];
}

// The cache section scans the cache's keys: refreshed less often than the rest.
const CACHE_SECTION_TTL_MS = 15_000;
const TOP_PROVIDERS = 10;

/** GET /admin/stats: one page of numbers, gathered through each module's own service. */
@Injectable()
export class AdminStatsService {
  private memo = new Map<number, { at: number; value: Promise<AdminStats> }>();
  private cacheMemo?: { at: number; value: Promise<ReturnType<typeof cacheView>> };

  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly traffic: RequestTrafficRepository,
    private readonly breakers: CircuitBreakerService,
    private readonly sessions: SessionPoolService,
    private readonly jobs: JobsService,
    private readonly cache: ResponseCacheService,
    private readonly redis: RedisService,
  ) {}

  snapshot(windowSeconds: number): Promise<AdminStats> {
    const now = Date.now();
    const hit = this.memo.get(windowSeconds);
    if (hit && now - hit.at < reuseMs(windowSeconds)) return hit.value;
    // Any window from 60 s to a day may be asked for (a dashboard passing its time range):
    // answers past their reuse period go, or the map would keep one per window ever asked.
    for (const [window, entry] of this.memo)
      if (now - entry.at >= reuseMs(window)) this.memo.delete(window);
    const value = this.collect(windowSeconds);
    this.memo.set(windowSeconds, { at: now, value });
    // A failed collection must not be served to the next caller.
    value.catch(() => this.memo.delete(windowSeconds));
    return value;
  }

  private async collect(windowSeconds: number): Promise<AdminStats> {
    const unavailable: string[] = [];
    const section = async <T>(name: string, read: () => Promise<T>): Promise<T | null> => {
      try {
        return await read();
      } catch (err) {
        unavailable.push(name);
        this.logger.warn({ err, section: name }, 'admin stats: section unavailable');
        return null;
      }
    };
    const [traffic, cache, sessions, breakers, queue] = await Promise.all([
      section('traffic', async () => {
        const [window, buckets, providers] = await Promise.all([
          this.traffic.window(windowSeconds),
          this.traffic.perMinute(SERIES_MINUTES),
          this.traffic.byProvider(windowSeconds, TOP_PROVIDERS),
        ]);
        return trafficView(window, windowSeconds, buckets, providers);
      }),
      section('cache', () => this.cacheSection()),
      section('sessions', async () => sessionsView(await this.sessions.counts())),
      section('breakers', async () => breakersView(await this.breakers.list())),
      section('queue', async () => queueView(await this.jobs.depth())),
    ]);
    return {
      generated_at: new Date().toISOString(),
      window_seconds: windowSeconds,
      traffic,
      cache,
      sessions,
      breakers,
      queue,
      redis: { mode: this.redis.mode },
      unavailable: unavailable.sort(),
    };
  }

  private cacheSection(): Promise<ReturnType<typeof cacheView>> {
    const now = Date.now();
    if (this.cacheMemo && now - this.cacheMemo.at < CACHE_SECTION_TTL_MS)
      return this.cacheMemo.value;
    const value = this.cache.stats().then(cacheView);
    this.cacheMemo = { at: now, value };
    value.catch(() => (this.cacheMemo = undefined));
    return value;
  }
}
