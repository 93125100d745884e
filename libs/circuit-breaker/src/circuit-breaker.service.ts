import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ComponentStatus, HealthRegistry } from '@app/health';
import { LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import { effectiveState, windowStats } from './breaker-state-machine';
import { BreakerSnapshot } from './breaker-store';
import {
  BreakerOutcome,
  BreakerSettings,
  BreakerState,
  BreakerTransition,
  BreakerView,
} from './breaker.types';
import { unknownBreakerError } from './circuit-breaker.errors';
import { breakerState, breakerTransitions, STATE_VALUE } from './circuit-breaker.metrics';
import { MemoryBreakerStore } from './memory-breaker.store';
import { RedisBreakerStore } from './redis-breaker.store';

/** Success rate and p95 latency are computed over this recent window. */
const STATS_WINDOW_MS = 5 * 60_000;
const GAUGE_REFRESH_MS = 2000;

/** A pass through a breaker; `release` reports how the attempt went (exactly once). */
export interface BreakerPermit {
  readonly name: string;
  readonly allowed: boolean;
  readonly state: BreakerState;
  /** For a refused permit: time until the open period ends. */
  readonly retryAfterMs: number;
  release(outcome: BreakerOutcome, latencyMs: number): Promise<void>;
}

/**
 * One breaker per provider, shared by every replica through Redis and kept in process memory
 * while Redis is away (RedisService.withFallback).
 *
 * Written here rather than taken from a library (opossum, cockatiel): those keep state in one
 * process, and DESIGN §6 needs one state per provider across replicas, updated atomically (Lua),
 * readable by operators (GET /admin/circuit-breakers) and resettable from the CLI.
 */
@Injectable()
export class CircuitBreakerService implements OnModuleInit, OnApplicationShutdown {
  private readonly names = new Set<string>();
  private readonly memory = new MemoryBreakerStore();
  private readonly shared = new RedisBreakerStore();
  private readonly settings: BreakerSettings;
  private refreshTimer?: NodeJS.Timeout;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly redis: RedisService,
    private readonly health: HealthRegistry,
  ) {
    this.settings = {
      failureThreshold: config.breaker.failureThreshold,
      openMs: config.breaker.openMs,
      halfOpenSuccesses: config.breaker.halfOpenSuccesses,
    };
  }

  onModuleInit(): void {
    this.health.register('circuit-breakers', () => this.healthComponents());
    if (this.config.breaker.allowForceOpen) {
      this.logger.warn(
        { component: 'circuit-breaker' },
        'ALLOW_FORCE_OPEN=true: admins can force circuit breakers open, also in production',
      );
    }
    if (this.config.backgroundTasks) {
      // Keeps the state gauge true on every replica, including transitions made elsewhere and
      // open periods that elapse with no traffic.
      this.refreshTimer = setInterval(() => void this.refreshGauges(), GAUGE_REFRESH_MS);
      this.refreshTimer.unref();
    }
  }

  onApplicationShutdown(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
  }

  /** Declares the breakers that exist (one per provider), so they are listed before any traffic. */
  register(names: Iterable<string>): void {
    for (const name of names) {
      if (this.names.has(name)) continue;
      this.names.add(name);
      breakerState.set({ breaker: name }, STATE_VALUE.closed);
    }
    void this.refreshGauges();
  }

  has(name: string): boolean {
    return this.names.has(name);
  }

  get breakerSettings(): Readonly<BreakerSettings> {
    return this.settings;
  }

  /** Asks the breaker whether an attempt may go to the provider now. */
  async acquire(name: string, permitTtlMs: number): Promise<BreakerPermit> {
    const permitId = randomUUID();
    const request = {
      now: Date.now(),
      permitId,
      maxProbes: this.settings.halfOpenSuccesses,
      permitTtlMs,
    };
    const admission = await this.redis.withFallback(
      (client) => this.shared.admit(client, name, request),
      () => this.memory.admit(name, request),
    );
    if (admission.from !== admission.state)
      this.transitioned(name, { from: admission.from, to: admission.state });
    let released = !admission.allowed;
    return {
      name,
      allowed: admission.allowed,
      state: admission.state,
      retryAfterMs: admission.retryAfterMs,
      release: async (outcome, latencyMs) => {
        if (released) return;
        released = true;
        await this.record(name, permitId, outcome, latencyMs);
      },
    };
  }

  private async record(
    name: string,
    permitId: string,
    outcome: BreakerOutcome,
    latencyMs: number,
  ): Promise<void> {
    const request = { now: Date.now(), permitId, outcome, latencyMs, settings: this.settings };
    try {
      const transition = await this.redis.withFallback(
        (client) => this.shared.record(client, name, request),
        () => this.memory.record(name, request),
      );
      if (transition.from !== transition.to) this.transitioned(name, transition);
    } catch (err) {
      // Never fail a client request because its outcome could not be counted.
      this.logger.warn({ err, breaker: name }, 'could not record circuit breaker outcome');
    }
  }

  private transitioned(name: string, { from, to }: BreakerTransition, actor?: string): void {
    breakerTransitions.inc({ breaker: name, from, to });
    breakerState.set({ breaker: name }, STATE_VALUE[to]);
    const fields = { component: 'circuit-breaker', breaker: name, from, to, actor };
    const message = `circuit breaker ${name}: ${from} -> ${to}`;
    if (to === 'open') this.logger.warn(fields, `${message} (circuit open)`);
    else this.logger.info(fields, message);
  }

  private async snapshots(names: string[]): Promise<Map<string, BreakerSnapshot>> {
    return this.redis.withFallback(
      (client) => this.shared.read(client, names),
      () => this.memory.read(names),
    );
  }

  private toView(name: string, snapshot: BreakerSnapshot, now: number): BreakerView {
    const { record } = snapshot;
    const state = effectiveState(record, now);
    const stats = windowStats(snapshot.samples, now, STATS_WINDOW_MS);
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      name,
      state,
      failures: record.failures,
      successRate: stats.successRate,
      p95LatencyMs: stats.p95LatencyMs,
      openedAt: state === 'closed' ? null : iso(record.openedAt),
      nextAttemptAt: record.state === 'open' ? iso(record.openUntil) : null,
      forced: record.forced && state === 'open',
      samples: stats.samples,
    };
  }

  async list(): Promise<BreakerView[]> {
    const names = [...this.names].sort();
    const snapshots = await this.snapshots(names);
    const now = Date.now();
    return names.map((name) => this.toView(name, snapshots.get(name)!, now));
  }

  async get(name: string): Promise<BreakerView> {
    if (!this.names.has(name)) throw unknownBreakerError(name);
    const snapshots = await this.snapshots([name]);
    return this.toView(name, snapshots.get(name)!, Date.now());
  }

  async reset(name: string, actor = 'unknown'): Promise<BreakerView> {
    if (!this.names.has(name)) throw unknownBreakerError(name);
    const transition = await this.redis.withFallback(
      (client) => this.shared.reset(client, name),
      () => this.memory.reset(name),
    );
    this.logger.warn(
      { component: 'circuit-breaker', breaker: name, actor, from: transition.from },
      `circuit breaker ${name} reset to closed by ${actor}`,
    );
    if (transition.from !== transition.to) this.transitioned(name, transition, actor);
    return this.get(name);
  }

  async forceOpen(name: string, durationMs: number, actor = 'unknown'): Promise<BreakerView> {
    if (!this.names.has(name)) throw unknownBreakerError(name);
    const transition = await this.redis.withFallback(
      (client) => this.shared.forceOpen(client, name, Date.now(), durationMs),
      () => this.memory.forceOpen(name, Date.now(), durationMs),
    );
    this.logger.warn(
      { component: 'circuit-breaker', breaker: name, actor, durationMs },
      `circuit breaker ${name} forced open for ${durationMs} ms by ${actor}`,
    );
    if (transition.from !== transition.to) this.transitioned(name, transition, actor);
    else breakerState.set({ breaker: name }, STATE_VALUE.open);
    return this.get(name);
  }

  private async refreshGauges(): Promise<void> {
    try {
      for (const view of await this.list())
        breakerState.set({ breaker: view.name }, STATE_VALUE[view.state]);
    } catch {
      // The next round tries again; the gauge keeps its last value meanwhile.
    }
  }

  private async healthComponents() {
    const statusOf: Record<BreakerState, ComponentStatus> = {
      closed: 'up',
      half_open: 'degraded',
      open: 'down',
    };
    return (await this.list()).map((view) => ({
      name: `circuit_breaker:${view.name}`,
      status: statusOf[view.state],
      details: { ...view },
    }));
  }
}
