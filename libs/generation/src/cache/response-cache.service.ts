import { randomBytes } from 'node:crypto';
import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import type Redis from 'ioredis';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import {
  CachePlan,
  CacheScope,
  CacheSelector,
  matchesSelector,
  parseCacheDirectives,
  planCache,
  selectorPattern,
} from './cache-key';
import type { ChatCompletion, ChatRequestBody } from './cache.types';
import { cacheRequests } from './cache.metrics';
import { MemoryLru } from './memory-lru';

export type CacheResult = 'hit' | 'miss' | 'bypass';

/** The outcome of looking a request up; the pipeline acts on it. */
export interface CacheLookup {
  /** Value for the `x-cache` response header. */
  result: CacheResult;
  /** On a hit: the answer to send (JSON, or replayed as SSE for a streaming request). */
  completion?: ChatCompletion;
  /** On a hit: the provider that produced the cached answer (for x-provider). */
  provider?: string;
  /** On a miss or a refresh: where to store a successful upstream answer. */
  storeKey?: string;
}

/** Who is asking: the cache reads only these parts of the auth Principal. */
export interface CachePrincipal {
  userId: string;
  cacheScope: 'user' | 'shared';
}

export interface CacheStats {
  hits: number;
  misses: number;
  bypasses: number;
  /** hits / (hits + misses); null before any lookup. */
  hit_rate: number | null;
  keys: number;
  memory_bytes: number;
  backend: 'redis' | 'memory';
  /** 'cluster': counted by every replica through Redis; 'process': this replica only. */
  counted_by: 'cluster' | 'process';
  ttl_seconds: number;
}

interface StoredEntry {
  /** The completion as the upstream answered it. */
  c: ChatCompletion;
  /** Provider name. */
  p?: string;
  /** Stored at (ms epoch). */
  t: number;
}

type Counts = { hits: number; misses: number; bypasses: number };

/** How long a read started ahead of its lookup may stand in for it (same request, ms earlier). */
const PREFETCH_TTL_MS = 1000;
/**
 * Reads started ahead and not yet taken. A lookup takes its read within milliseconds; the ones
 * left (refused or rewritten requests) hold a parsed entry each until they go stale, so few.
 */
const PREFETCH_MAX = 256;

/**
 * Clears asked for while Redis was unreachable, kept until it answers again. More than this and
 * they become one clear of everything: a cache cleared too widely only costs misses.
 */
const PENDING_CLEARS_MAX = 100;

const STATS_KEY = 'rcstats';
const STATS_FLUSH_MS = 5000;
const SCAN_COUNT = 1000;

function emptyCounts(): Counts {
  return { hits: 0, misses: 0, bypasses: 0 };
}

/**
 * Response cache for deterministic chat completions (temperature 0, or `x-cache: force`), keyed
 * by a hash of the normalized request and scoped per user unless the key is configured 'shared'.
 * Entries live in Redis for CACHE_DEFAULT_TTL; without Redis, in a byte-bounded LRU in this
 * process. A cache failure never fails a request: it becomes a miss.
 */
@Injectable()
export class ResponseCacheService implements OnModuleInit, OnApplicationShutdown {
  private readonly memory: MemoryLru;
  /** Counts not yet added to the cluster-wide totals in Redis. */
  private pending = emptyCounts();
  /** This process's counts since start (what stats show without Redis). */
  private readonly local = emptyCounts();
  private flushTimer?: NodeJS.Timeout;
  /** Reads started by prefetch(), by cache key, until lookup() takes them. */
  private readonly prefetched = new Map<
    string,
    { read: Promise<StoredEntry | undefined>; at: number }
  >();
  /** Clears Redis missed (it was unreachable), applied to it when it is back. */
  private pendingClears: CacheSelector[] = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly redis: RedisService,
  ) {
    this.memory = new MemoryLru(config.cache.memoryMaxBytes);
  }

  onModuleInit(): void {
    // Entries written during an outage are not in Redis; drop them rather than serve them again
    // in a later outage after the operator may have cleared the cache.
    // A clear made meanwhile reached only memory: the Redis entries it meant are still there.
    this.redis.onConnectionChange((up) => {
      if (!up) return;
      this.memory.deleteWhere(() => true);
      void this.applyPendingClears();
    });
    if (this.redis.isConfigured) {
      this.flushTimer = setInterval(() => void this.flushCounts(), STATS_FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    await this.flushCounts();
  }

  private get ttlMs(): number {
    return this.config.cache.defaultTtlSeconds * 1000;
  }

  private count(result: CacheResult): void {
    cacheRequests.inc({ result });
    const field = result === 'hit' ? 'hits' : result === 'miss' ? 'misses' : 'bypasses';
    this.pending[field]++;
    this.local[field]++;
  }

  /**
   * Starts the read that lookup() will make for this request, as soon as the caller is known:
   * it then leaves for Redis together with the rate-limit check, one round trip instead of two.
   * lookup() uses it when it computes the same key within PREFETCH_TTL_MS; a request refused
   * before its lookup, or whose body the pipeline rewrites (conversations), leaves it unused.
   * Counts nothing and never throws: the body here is not validated yet.
   */
  prefetch(
    body: unknown,
    headers: Record<string, string | string[] | undefined>,
    principal: CachePrincipal,
  ): void {
    if (this.ttlMs === 0 || typeof body !== 'object' || body === null || Array.isArray(body))
      return;
    let plan: CachePlan;
    try {
      plan = planCache(body as ChatRequestBody, parseCacheDirectives(headers), scopeOf(principal));
    } catch {
      return;
    }
    if (plan.mode !== 'lookup') return;
    const now = Date.now();
    this.dropStalePrefetches(now);
    if (this.prefetched.has(plan.key) || this.prefetched.size >= PREFETCH_MAX) return;
    this.prefetched.set(plan.key, { read: this.read(plan.key), at: now });
  }

  /** The map is in insertion order, oldest first: stop at the first fresh read. */
  private dropStalePrefetches(now: number): void {
    for (const [key, early] of this.prefetched) {
      if (now - early.at < PREFETCH_TTL_MS) return;
      this.prefetched.delete(key);
    }
  }

  /** The read prefetch() started for this key, if it is fresh; taken once. */
  private takePrefetched(key: string): Promise<StoredEntry | undefined> | undefined {
    const early = this.prefetched.get(key);
    if (!early) return undefined;
    this.prefetched.delete(key);
    return Date.now() - early.at < PREFETCH_TTL_MS ? early.read : undefined;
  }

  /**
   * Decides and, for a deterministic request, looks it up. Call before credits are reserved and
   * before any upstream call; on a hit, answer from `completion` and call nothing upstream.
   */
  async lookup(
    body: ChatRequestBody,
    headers: Record<string, string | string[] | undefined>,
    principal: CachePrincipal,
  ): Promise<CacheLookup> {
    const plan = planCache(body, parseCacheDirectives(headers), scopeOf(principal));
    if (plan.mode === 'bypass' || this.ttlMs === 0) {
      this.count('bypass');
      return { result: 'bypass' };
    }
    if (plan.mode === 'refresh') {
      this.count('bypass');
      return { result: 'bypass', storeKey: plan.key };
    }
    const entry = await (this.takePrefetched(plan.key) ?? this.read(plan.key));
    if (!entry) {
      this.count('miss');
      return { result: 'miss', storeKey: plan.key };
    }
    this.count('hit');
    return {
      result: 'hit',
      provider: entry.p,
      // A new id and time: this is a new response that happens to repeat an earlier answer.
      completion: {
        ...entry.c,
        id: `chatcmpl-${randomBytes(12).toString('hex')}`,
        created: Math.floor(Date.now() / 1000),
      },
    };
  }

  private async read(key: string): Promise<StoredEntry | undefined> {
    try {
      const raw = await this.redis.withFallback(
        (client) => client.get(key),
        () => this.memory.get(key) ?? null,
      );
      return raw ? (JSON.parse(raw) as StoredEntry) : undefined;
    } catch (err) {
      this.logger.warn(
        { err: (err as Error).message },
        'response cache read failed; treated as a miss',
      );
      return undefined;
    }
  }

  /** Stores a successful, complete answer under the key from lookup(). Never throws. */
  async store(storeKey: string, completion: ChatCompletion, provider?: string): Promise<void> {
    const value = JSON.stringify({
      c: completion,
      p: provider,
      t: Date.now(),
    } satisfies StoredEntry);
    const ttlMs = this.ttlMs;
    try {
      await this.redis.withFallback(
        async (client) => {
          await client.set(storeKey, value, 'PX', ttlMs);
        },
        () => this.memory.set(storeKey, value, ttlMs),
      );
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'response cache write failed');
    }
  }

  /**
   * Removes every entry, or one user's (their own scope; shared entries stay), or one model's.
   * With Redis unreachable only this process's entries go now; Redis's go when it is back.
   */
  async clear(selector: CacheSelector): Promise<number> {
    const inMemory = this.memory.deleteWhere((key) => matchesSelector(key, selector));
    const inRedis = await this.clearOnRedis(selector);
    this.logger.info({ selector, removed: inMemory + inRedis }, 'response cache cleared');
    return inMemory + inRedis;
  }

  /** Deletes the selector's entries on Redis; when it cannot be reached, remembers the clear. */
  private async clearOnRedis(selector: CacheSelector): Promise<number> {
    if (!this.redis.isConfigured) return 0;
    return this.redis.withFallback(
      async (client) => {
        let removed = 0;
        await this.scan(client, selectorPattern(selector), async (keys) => {
          removed += await client.del(...keys);
        });
        return removed;
      },
      () => {
        this.deferClear(selector);
        return 0;
      },
    );
  }

  private deferClear(selector: CacheSelector): void {
    if (this.pendingClears.length >= PENDING_CLEARS_MAX) this.pendingClears = [{}];
    else this.pendingClears.push(selector);
    this.logger.warn(
      { selector },
      'response cache clear: Redis unreachable; its entries will be cleared when it is back',
    );
  }

  private async applyPendingClears(): Promise<void> {
    const clears = this.pendingClears;
    this.pendingClears = [];
    for (const selector of clears) {
      try {
        const removed = await this.clearOnRedis(selector);
        this.logger.info({ selector, removed }, 'response cache cleared on Redis (deferred clear)');
      } catch (err) {
        this.deferClear(selector);
        this.logger.warn({ err: (err as Error).message }, 'deferred response cache clear failed');
      }
    }
  }

  async stats(): Promise<CacheStats> {
    const base = { ttl_seconds: this.config.cache.defaultTtlSeconds };
    const onRedis = await this.redis.withFallback(
      async (client) => {
        await this.flushCounts();
        const totals = await client.hgetall(STATS_KEY);
        let keys = 0;
        let bytes = 0;
        await this.scan(client, selectorPattern({}), async (found) => {
          keys += found.length;
          const pipeline = client.pipeline();
          for (const key of found) pipeline.strlen(key);
          for (const [, length] of (await pipeline.exec()) ?? []) bytes += Number(length ?? 0);
        });
        const counts = {
          hits: Number(totals.hits ?? 0),
          misses: Number(totals.misses ?? 0),
          bypasses: Number(totals.bypasses ?? 0),
        };
        return {
          ...counts,
          hit_rate: hitRate(counts),
          keys,
          memory_bytes: bytes,
          backend: 'redis' as const,
          counted_by: 'cluster' as const,
          ...base,
        };
      },
      () => undefined,
    );
    if (onRedis) return onRedis;
    const { keys, bytes } = this.memory.stats();
    return {
      ...this.local,
      hit_rate: hitRate(this.local),
      keys,
      memory_bytes: bytes,
      backend: 'memory',
      counted_by: 'process',
      ...base,
    };
  }

  /** Adds this replica's counts to the cluster totals (batched off the request path). */
  private async flushCounts(): Promise<void> {
    const counts = this.pending;
    if (counts.hits + counts.misses + counts.bypasses === 0) return;
    this.pending = emptyCounts();
    const sent = await this.redis
      .withFallback(
        async (client) => {
          await client
            .multi()
            .hincrby(STATS_KEY, 'hits', counts.hits)
            .hincrby(STATS_KEY, 'misses', counts.misses)
            .hincrby(STATS_KEY, 'bypasses', counts.bypasses)
            .exec();
          return true;
        },
        () => false,
      )
      .catch(() => false);
    if (!sent) {
      // Keep them for the next flush once Redis is back.
      this.pending.hits += counts.hits;
      this.pending.misses += counts.misses;
      this.pending.bypasses += counts.bypasses;
    }
  }

  /** SCAN patterns are not prefixed by ioredis, and returned keys carry the prefix: undo both. */
  private async scan(
    client: Redis,
    pattern: string,
    onKeys: (keys: string[]) => Promise<void>,
  ): Promise<void> {
    const prefix = this.config.redis.keyPrefix;
    const escapedPrefix = prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(
        cursor,
        'MATCH',
        `${escapedPrefix}${pattern}`,
        'COUNT',
        SCAN_COUNT,
      );
      cursor = next;
      if (keys.length > 0) await onKeys(keys.map((k) => k.slice(prefix.length)));
    } while (cursor !== '0');
  }
}

function hitRate(counts: Counts): number | null {
  const lookups = counts.hits + counts.misses;
  return lookups === 0 ? null : Math.round((counts.hits / lookups) * 10000) / 10000;
}

function scopeOf(principal: CachePrincipal): CacheScope {
  return principal.cacheScope === 'shared'
    ? { kind: 'shared' }
    : { kind: 'user', userId: principal.userId };
}
