import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import Redis, { type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { coalesceWrites } from './coalesced-writes';
import { KeyValueStore } from './key-value-store';
import { MemoryStore } from './memory-store';
import { RedisStore } from './redis-store';
import { redisErrors, redisFallbackActive, redisUp } from './redis.metrics';

export type RedisMode = 'redis' | 'memory-fallback' | 'memory';

type MessageHandler = (message: string) => void;

/** How often a fallback with the connection still open asks Redis whether it answers again. */
const RECOVERY_PROBE_MS = 1000;

/** A full Redis refuses every write: one warning a minute says so without flooding the logs. */
const OOM_WARNING_INTERVAL_MS = 60_000;

/**
 * Redis at `maxmemory` under `noeviction` refuses writes ("OOM command not allowed …"), also
 * inside a script, a pipeline, or a MULTI (whose EXEC then fails with EXECABORT and carries the
 * refusals as previousErrors).
 */
function isOutOfMemory(err: unknown): boolean {
  const refused = (e: unknown) =>
    /^OOM\b|OOM command not allowed/.test((e as Error)?.message ?? '');
  const previous = (err as { previousErrors?: unknown[] })?.previousErrors;
  return refused(err) || (Array.isArray(previous) && previous.some(refused));
}

/**
 * Owns the Redis connections and decides, per call, whether state lives in Redis or in this
 * process. With no REDIS_URL it is memory from the start; with one, losing Redis switches to
 * memory ("FALLBACK ACTIVATED") and its return switches back ("FALLBACK DEACTIVATED").
 */
@Injectable()
export class RedisService implements OnApplicationShutdown {
  readonly memory = new MemoryStore();
  private client?: Redis;
  private subscriber?: Redis;
  private redisStore?: RedisStore;
  private connected = false;
  private readonly localBus = new EventEmitter();
  private readonly channels = new Set<string>();
  private readonly gapListeners: (() => void)[] = [];
  private readonly transitions = new EventEmitter();
  private recoveryTimer?: NodeJS.Timeout;
  private lastOomWarningAt?: number;
  private oomSinceWarning = 0;

  readonly store: KeyValueStore;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.localBus.setMaxListeners(0);
    this.store = this.fallbackStore();
    redisUp.set(0);
    redisFallbackActive.set(config.redis.url ? 1 : 0);
  }

  /** Connects when REDIS_URL is set; resolves once connected or after a short wait. */
  async connect(): Promise<void> {
    const url = this.config.redis.url;
    if (!url) {
      this.logger.info(
        'REDIS_URL not set: cache, rate limits, conversations and breakers use process memory',
      );
      return;
    }
    const options = {
      keyPrefix: this.config.redis.keyPrefix,
      enableOfflineQueue: false,
      // enableAutoPipelining stays off: ioredis 5.11 crashed the process under load with it
      // ("results[i] is not iterable" in autoPipelining.js, an uncaught throw in a callback).
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      commandTimeout: 1000,
      retryStrategy: (times: number) => Math.min(100 * times, 1000),
      ...this.sentinelOptions(),
    };
    this.client = new Redis(url, options);
    this.subscriber = new Redis(url, {
      ...options,
      keyPrefix: undefined,
      commandTimeout: undefined,
      enableOfflineQueue: true,
      maxRetriesPerRequest: null,
    });
    this.redisStore = new RedisStore(this.client, this.config.redis.keyPrefix);
    // Each reconnect makes a new socket.
    this.client.on('connect', () => coalesceWrites(this.client!.stream as Socket));
    this.client.on('ready', () => this.setConnected(true));
    this.client.on('close', () => this.setConnected(false));
    this.client.on('end', () => this.setConnected(false));
    this.client.on('error', (err) => this.logger.debug({ err: err.message }, 'redis client error'));
    this.subscriber.on('error', () => undefined);
    this.subscriber.on('ready', () => void this.resubscribed());
    this.subscriber.on('message', (channel: string, message: string) => {
      this.localBus.emit(channel, message);
    });
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2500);
      this.client!.once('ready', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    if (!this.connected) this.announceFallback(true);
  }

  /**
   * With REDIS_SENTINELS the Sentinels say which server is the master (REDIS_URL gives only the
   * credentials, database and TLS). After a failover the old master answers writes with
   * READONLY until it learns its new role: that error reconnects, through the Sentinels.
   */
  private sentinelOptions(): Partial<RedisOptions> {
    const { sentinels, sentinelName, sentinelPassword } = this.config.redis;
    if (sentinels.length === 0) return {};
    return {
      sentinels,
      name: sentinelName,
      sentinelPassword,
      failoverDetector: true,
      reconnectOnError: (err: Error) => err.message.startsWith('READONLY'),
    };
  }

  private setConnected(up: boolean): void {
    // Our own disconnect at shutdown is not an outage: no FALLBACK ACTIVATED error line for it.
    if (this.closing || up === this.connected) return;
    this.connected = up;
    redisUp.set(up ? 1 : 0);
    // State kept in memory during the outage is not copied back (Redis has the shared state);
    // kept, it would return as the state of the next outage, older than Redis's.
    if (up) this.memory.clear();
    this.announceFallback(!up);
    this.transitions.emit('change', up);
    if (up) this.stopRecoveryProbe();
    else this.startRecoveryProbe();
  }

  /**
   * A command that timed out (a stalled or overloaded Redis) starts the fallback while the
   * socket stays open, so no reconnect and no 'ready' event will ever end it. Until one does,
   * ask Redis on that socket once a second; the first answer ends the fallback.
   */
  private startRecoveryProbe(): void {
    if (this.recoveryTimer) return;
    this.recoveryTimer = setInterval(() => {
      const client = this.client;
      if (!client || client.status !== 'ready') return; // reconnecting: 'ready' will tell
      client.ping().then(
        () => this.setConnected(true),
        () => undefined,
      );
    }, RECOVERY_PROBE_MS);
    this.recoveryTimer.unref();
  }

  private stopRecoveryProbe(): void {
    clearInterval(this.recoveryTimer);
    this.recoveryTimer = undefined;
  }

  private fallbackAnnounced?: boolean;
  private closing = false;
  private announceFallback(active: boolean): void {
    if (this.fallbackAnnounced === active) return;
    const wasActive = this.fallbackAnnounced === true;
    this.fallbackAnnounced = active;
    redisFallbackActive.set(active ? 1 : 0);
    if (active)
      this.logger.error(
        { component: 'redis' },
        'FALLBACK ACTIVATED: Redis unreachable, using per-process memory state',
      );
    else if (wasActive)
      this.logger.warn(
        { component: 'redis' },
        'FALLBACK DEACTIVATED: Redis reachable again, state back on Redis',
      );
  }

  get mode(): RedisMode {
    if (!this.config.redis.url) return 'memory';
    return this.connected ? 'redis' : 'memory-fallback';
  }

  get isConnected(): boolean {
    return this.connected;
  }

  get isConfigured(): boolean {
    return this.config.redis.url !== undefined;
  }

  /** Called with `true` when Redis comes back and `false` when it is lost. */
  onConnectionChange(listener: (up: boolean) => void): void {
    this.transitions.on('change', listener);
  }

  /**
   * Runs `onRedis` against the shared client when connected; otherwise, or when the call fails
   * because Redis went away, runs `onMemory`. Modules with their own Lua scripts use this.
   *
   * A call refused because Redis is full also runs `onMemory`, for that call only: Redis still
   * answers (reads, PING), so announcing a fallback would have the recovery probe end it at once
   * and the logs flap. It is counted (`gateway_redis_errors_total{reason="oom"}`) and warned about
   * once a minute instead.
   */
  async withFallback<T>(
    onRedis: (client: Redis) => Promise<T>,
    onMemory: () => T | Promise<T>,
  ): Promise<T> {
    if (this.client && this.connected) {
      try {
        return await onRedis(this.client);
      } catch (err) {
        if (isOutOfMemory(err)) {
          this.refusedForMemory(err);
          return onMemory();
        }
        if (!this.isRedisDown(err)) throw err;
        this.setConnected(false);
      }
    }
    return onMemory();
  }

  private refusedForMemory(err: unknown): void {
    redisErrors.inc({ reason: 'oom' });
    this.oomSinceWarning++;
    const now = Date.now();
    if (
      this.lastOomWarningAt !== undefined &&
      now - this.lastOomWarningAt < OOM_WARNING_INTERVAL_MS
    )
      return;
    this.lastOomWarningAt = now;
    this.logger.warn(
      { component: 'redis', refused: this.oomSinceWarning, err: (err as Error).message },
      'Redis refused a write: out of memory (maxmemory reached with noeviction); ' +
        'such calls use per-process memory until Redis has room (see runbook RedisMemoryHigh)',
    );
    this.oomSinceWarning = 0;
  }

  private isRedisDown(err: unknown): boolean {
    const message = (err as Error)?.message ?? '';
    return (
      /Connection is closed|Stream isn't writeable|enableOfflineQueue|Command timed out|ECONNREFUSED|ECONNRESET|max retries/i.test(
        message,
      ) || this.client?.status !== 'ready'
    );
  }

  private fallbackStore(): KeyValueStore {
    const pick = <K extends keyof KeyValueStore>(method: K) =>
      ((...args: unknown[]) =>
        this.withFallback(
          () => (this.redisStore![method] as (...a: unknown[]) => Promise<unknown>)(...args),
          () => (this.memory[method] as (...a: unknown[]) => Promise<unknown>)(...args),
        )) as KeyValueStore[K];
    return {
      get: pick('get'),
      set: pick('set'),
      del: pick('del'),
      incrBy: pick('incrBy'),
      deleteByPrefix: pick('deleteByPrefix'),
      countByPrefix: pick('countByPrefix'),
    };
  }

  async ping(): Promise<number> {
    if (!this.client || !this.connected) throw new Error('redis not connected');
    const started = performance.now();
    await this.client.ping();
    return performance.now() - started;
  }

  /** Cross-replica broadcast; in memory mode (or during fallback) it reaches this process only. */
  async publish(channel: string, message: string): Promise<void> {
    const fullChannel = `${this.config.redis.keyPrefix}${channel}`;
    const sent = await this.withFallback(
      async (client) => {
        await client.publish(fullChannel, message);
        return true;
      },
      () => false,
    );
    if (!sent) this.localBus.emit(fullChannel, message);
  }

  /**
   * Every (re)connection of the subscriber connection: once Redis has confirmed the
   * subscriptions, tells their owners that messages published before it (while the connection
   * was down, or before it first came up) were not delivered. The main client may never have
   * noticed (a subscriber killed on its own), so onConnectionChange is not enough.
   */
  private async resubscribed(): Promise<void> {
    if (this.channels.size === 0) return;
    try {
      await this.subscriber!.subscribe(...this.channels);
    } catch (err) {
      // Lost again before Redis answered: the next 'ready' tries again and reports the gap.
      this.logger.debug({ err: (err as Error).message }, 'redis resubscribe failed');
      return;
    }
    for (const onGap of this.gapListeners) {
      try {
        onGap();
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'pub/sub gap handler failed');
      }
    }
  }

  /**
   * `handler` gets each message on `channel` (from every replica, or from this process only in
   * memory mode and during a fallback). `onGap` is called when messages may have been missed:
   * the subscriber connection came (back) up. An owner that keeps state the channel invalidates
   * (a cache) must drop or reload it there.
   */
  subscribe(channel: string, handler: MessageHandler, onGap?: () => void): void {
    const fullChannel = `${this.config.redis.keyPrefix}${channel}`;
    this.localBus.on(fullChannel, handler);
    if (onGap) this.gapListeners.push(onGap);
    if (!this.channels.has(fullChannel)) {
      this.channels.add(fullChannel);
      void this.subscriber?.subscribe(fullChannel).catch(() => undefined);
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.closing = true;
    this.stopRecoveryProbe();
    this.transitions.removeAllListeners();
    this.localBus.removeAllListeners();
    this.gapListeners.length = 0;
    // disconnect() rather than quit(): quit waits for a reconnect that may never come.
    this.client?.disconnect();
    this.subscriber?.disconnect();
  }
}
