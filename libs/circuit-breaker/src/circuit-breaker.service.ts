import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationShutdown,
  OnModuleInit,
} from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
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
import { ClosedStateView } from './closed-state-view';
import { MemoryBreakerStore } from './memory-breaker.store';
import { RedisBreakerStore } from './redis-breaker.store';
import { SuccessBuffer } from './success-buffer';

/** Success rate and p95 latency are computed over this recent window. */
const STATS_WINDOW_MS = 5 * 60_000;
const GAUGE_REFRESH_MS = 2000;
/**
 * A breaker seen closed in Redis this recently admits without asking Redis again. The bound only
 * matters when a change announcement is lost (subscriber reconnecting): pub/sub normally tells
 * every replica within milliseconds. Buffered-success flushes renew it under steady traffic.
 */
export const CLOSED_VIEW_FRESH_MS = 500;
/** Buffered successes go to Redis this long after the first of them, or at FLUSH_AT waiting. */
export const FLUSH_MS = 250;
export const FLUSH_AT = 100;
/** Pub/sub channel: "this breaker changed state", so replicas drop their closed view of it. */
export const BREAKER_CHANGED_CHANNEL = 'circuit-breaker:changed';

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
 * Closed-state fast path (no Redis round trip on the common path): while this process saw the
 * breaker closed within CLOSED_VIEW_FRESH_MS, `acquire` admits locally, and the successes of
 * closed-state attempts are buffered and sent in one batched call (FLUSH_MS / FLUSH_AT). A
 * failure, and anything outside closed state (open, half-open probes), goes to Redis at once as
 * before, after this breaker's buffered successes in the same round trip, so the consecutive
 * count stays exact. Every transition is announced on BREAKER_CHANGED_CHANNEL.
 *
 * Written here rather than taken from a library (opossum, cockatiel): those keep state in one
 * process, and DESIGN §6 needs one state per provider across replicas, updated atomically (Lua),
 * readable by operators (GET /admin/circuit-breakers) and resettable from the CLI.
 */
@Injectable()
export class CircuitBreakerService
  implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly names = new Set<string>();
  private readonly memory = new MemoryBreakerStore();
  private readonly shared = new RedisBreakerStore();
  private readonly settings: BreakerSettings;
  private readonly view = new ClosedStateView(CLOSED_VIEW_FRESH_MS);
  private readonly pending = new SuccessBuffer();
  private refreshTimer?: NodeJS.Timeout;
  private flushTimer?: NodeJS.Timeout;
  /** Set at shutdown: successes are recorded at once, with nobody left to flush them later. */
  private draining = false;

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
    this.redis.subscribe(
      BREAKER_CHANGED_CHANNEL,
      (name) => this.view.forget(name),
      () => this.view.forgetAll(),
    );
    // Announcements made while we were disconnected are lost: ask Redis again after a reconnect.
    // The outage's per-process state is over too: kept, a breaker it opened would still refuse a
    // healthy provider at the start of the next outage (Redis flapping), or admit it only as
    // half-open probes.
    this.redis.onConnectionChange((up) => {
      this.view.forgetAll();
      if (up) this.memory.clear();
    });
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

  /** HTTP has drained by now (bootstrap.ts); later releases (jobs) are recorded directly. */
  async beforeApplicationShutdown(): Promise<void> {
    this.draining = true;
    await this.flush();
  }

  onApplicationShutdown(): void {
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
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
    const now = Date.now();
    if (this.redis.isConnected && this.view.isClosed(name, now))
      return this.permit(name, permitId, { allowed: true, state: 'closed', retryAfterMs: 0 });
    const request = { now, permitId, maxProbes: this.settings.halfOpenSuccesses, permitTtlMs };
    const generation = this.view.generation;
    const { value: admission, fromRedis } = await this.sharedOrMemory(
      (client) => this.shared.admit(client, name, request),
      () => this.memory.admit(name, request),
    );
    if (fromRedis) this.view.saw(name, admission.state, now, generation);
    if (admission.from !== admission.state)
      await this.transitioned(name, { from: admission.from, to: admission.state });
    return this.permit(name, permitId, admission);
  }

  private permit(
    name: string,
    permitId: string,
    admission: Pick<BreakerPermit, 'allowed' | 'state' | 'retryAfterMs'>,
  ): BreakerPermit {
    let released = !admission.allowed;
    const admittedClosed = admission.state === 'closed';
    return {
      name,
      allowed: admission.allowed,
      state: admission.state,
      retryAfterMs: admission.retryAfterMs,
      release: async (outcome, latencyMs) => {
        if (released) return;
        released = true;
        // A closed-state permit holds no probe slot, so a neutral outcome has nothing to undo.
        if (admittedClosed && outcome === 'neutral') return;
        if (admittedClosed && outcome === 'success' && this.redis.isConnected && !this.draining)
          return this.buffer(name, latencyMs);
        await this.record(name, permitId, outcome, latencyMs);
      },
    };
  }

  private buffer(name: string, latencyMs: number): void {
    const waiting = this.pending.add(name, { at: Date.now(), latencyMs });
    if (waiting >= FLUSH_AT) void this.flush();
    else if (!this.flushTimer) {
      // Unref'd: shutdown flushes through beforeApplicationShutdown, not by waiting for this.
      this.flushTimer = setTimeout(() => void this.flush(), FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  /** Sends every buffered success, all breakers in one round trip. Never throws. */
  private async flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batches = this.pending.takeAll();
    if (batches.length === 0) return;
    const sentAt = Date.now();
    const generation = this.view.generation;
    try {
      const states = await this.redis.withFallback(
        (client) => this.shared.recordSuccesses(client, batches),
        async () => {
          for (const [name, successes] of batches)
            await this.memory.recordSuccesses(name, successes);
          return undefined;
        },
      );
      // Each reply is a fresh read of the state: steady traffic keeps the closed view fresh.
      states?.forEach((state, i) => this.view.saw(batches[i][0], state, sentAt, generation));
    } catch (err) {
      this.logger.warn({ err }, 'could not record buffered circuit breaker successes');
    }
  }

  private async record(
    name: string,
    permitId: string,
    outcome: BreakerOutcome,
    latencyMs: number,
  ): Promise<void> {
    // This breaker's buffered successes happened before this outcome: record them first, in
    // the same round trip, or a success could reset the failure counted after it.
    const earlier = this.pending.take(name);
    const request = { now: Date.now(), permitId, outcome, latencyMs, settings: this.settings };
    const generation = this.view.generation;
    try {
      const { value: transition, fromRedis } = await this.sharedOrMemory(
        (client) => this.shared.recordAfter(client, name, earlier, request),
        async () => {
          if (earlier.length > 0) await this.memory.recordSuccesses(name, earlier);
          return this.memory.record(name, request);
        },
      );
      // After a failure, ask Redis again next time rather than trust a count near the threshold.
      if (outcome === 'failure') this.view.forget(name);
      else if (fromRedis) this.view.saw(name, transition.to, request.now, generation);
      if (transition.from !== transition.to) await this.transitioned(name, transition);
    } catch (err) {
      // Never fail a client request because its outcome could not be counted.
      this.logger.warn({ err, breaker: name }, 'could not record circuit breaker outcome');
    }
  }

  /**
   * RedisService.withFallback, also saying whether Redis answered: only a Redis reply may feed the
   * closed view (the memory store knows nothing of other replicas).
   */
  private async sharedOrMemory<T>(
    onRedis: (client: Redis) => Promise<T>,
    inMemory: () => T | Promise<T>,
  ): Promise<{ value: T; fromRedis: boolean }> {
    let fromRedis = false;
    const value = await this.redis.withFallback(async (client) => {
      const result = await onRedis(client);
      fromRedis = true;
      return result;
    }, inMemory);
    return { value, fromRedis };
  }

  private async transitioned(
    name: string,
    { from, to }: BreakerTransition,
    actor?: string,
  ): Promise<void> {
    breakerTransitions.inc({ breaker: name, from, to });
    breakerState.set({ breaker: name }, STATE_VALUE[to]);
    const fields = { component: 'circuit-breaker', breaker: name, from, to, actor };
    const message = `circuit breaker ${name}: ${from} -> ${to}`;
    if (to === 'open') this.logger.warn(fields, `${message} (circuit open)`);
    else this.logger.info(fields, message);
    await this.announce(name);
  }

  /**
   * Tells every replica (this one too) to drop its closed view of the breaker. Awaited, so the
   * caller's response goes out after Redis has passed the message on to the subscribers.
   */
  private async announce(name: string): Promise<void> {
    this.view.forget(name);
    try {
      await this.redis.publish(BREAKER_CHANGED_CHANNEL, name);
    } catch (err) {
      // The other replicas' views expire within CLOSED_VIEW_FRESH_MS anyway.
      this.logger.warn({ err, breaker: name }, 'could not announce circuit breaker change');
    }
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
    // This replica's own successes show at once; other replicas' within FLUSH_MS.
    await this.flush();
    const names = [...this.names].sort();
    const snapshots = await this.snapshots(names);
    const now = Date.now();
    return names.map((name) => this.toView(name, snapshots.get(name)!, now));
  }

  async get(name: string): Promise<BreakerView> {
    if (!this.names.has(name)) throw unknownBreakerError(name);
    await this.flush();
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
    if (transition.from !== transition.to) await this.transitioned(name, transition, actor);
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
    if (transition.from !== transition.to) await this.transitioned(name, transition, actor);
    else {
      breakerState.set({ breaker: name }, STATE_VALUE.open);
      // Already open here, but a replica with a stale closed view must not keep admitting.
      await this.announce(name);
    }
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
