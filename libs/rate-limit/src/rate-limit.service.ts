import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { HealthRegistry } from '@app/health';
import { LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import { rateLimitExceeded, rateLimiterUnavailable } from './rate-limit.errors';
import { rateLimitRejections } from './rate-limit.metrics';
import { consumeOnRedis } from './rate-limit.script';
import { Limits, LocalWindows, RateLimitDecision, rateLimitHeaders } from './rate-limit.window';

const COUNTED = Symbol('switchyard.rateLimitCounted');

/** The part of the auth Principal that rate limiting reads. */
export interface RateLimitedPrincipal {
  apiKeyId: string;
  /** The key's own limits; null means the RATE_LIMIT_PER_* defaults. */
  rateLimitPerMinute: number | null;
  rateLimitPerHour: number | null;
}

interface RawResponse {
  setHeader(name: string, value: string): unknown;
  headersSent?: boolean;
}

/** Anything headers can be set on: a FastifyReply or a raw ServerResponse. */
export interface HeaderTarget {
  header?(name: string, value: string): unknown;
  setHeader?(name: string, value: string): unknown;
  headersSent?: boolean;
  raw?: RawResponse;
}

/**
 * Per-API-key request limits, per minute and per hour, counted across replicas on Redis with
 * one script call per request. While Redis is unreachable the policy RATE_LIMIT_ON_REDIS_FAILURE
 * decides: `local` counts per process (each replica then allows the full limit), `deny` answers
 * 503. Either way the switch is logged, shown on /health/detailed and gateway_redis_fallback_active.
 */
@Injectable()
export class RateLimitService implements OnModuleInit {
  private readonly local = new LocalWindows();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly redis: RedisService,
    private readonly health: HealthRegistry,
  ) {}

  onModuleInit(): void {
    this.health.register('rate_limiter', async () => this.report());
    this.redis.onConnectionChange((up) => this.announce(up));
    if (this.redis.isConfigured && !this.redis.isConnected) this.announce(false);
  }

  private get policy(): 'local' | 'deny' {
    return this.config.rateLimit.onRedisFailure;
  }

  /** Where counting happens right now: on Redis, per process, or nowhere (deny). */
  get backend(): 'redis' | 'local' | 'deny' {
    if (!this.redis.isConfigured) return 'local';
    if (this.redis.isConnected) return 'redis';
    return this.policy === 'deny' ? 'deny' : 'local';
  }

  private announce(redisUp: boolean): void {
    if (redisUp) {
      this.logger.warn(
        { component: 'rate_limiter', backend: 'redis' },
        'rate limits counted on Redis again (global across replicas)',
      );
    } else if (this.policy === 'deny') {
      this.logger.error(
        { component: 'rate_limiter', backend: 'deny', policy: this.policy },
        'rate limiter cannot reach Redis: refusing rate-limited requests with 503 (RATE_LIMIT_ON_REDIS_FAILURE=deny)',
      );
    } else {
      this.logger.error(
        { component: 'rate_limiter', backend: 'local', policy: this.policy },
        'rate limiter cannot reach Redis: limits now counted per process (RATE_LIMIT_ON_REDIS_FAILURE=local)',
      );
    }
  }

  private async report() {
    const backend = this.backend;
    return {
      name: 'rate_limiter',
      status: (backend === 'deny'
        ? 'down'
        : this.redis.mode === 'memory-fallback'
          ? 'degraded'
          : 'up') as 'up' | 'down' | 'degraded',
      details: {
        backend,
        policy: this.policy,
        redis_mode: this.redis.mode,
        global_across_replicas: backend === 'redis',
        default_per_minute: this.config.rateLimit.perMinute,
        default_per_hour: this.config.rateLimit.perHour,
      },
    };
  }

  limitsFor(principal: RateLimitedPrincipal): Limits {
    return {
      perMinute: principal.rateLimitPerMinute ?? this.config.rateLimit.perMinute,
      perHour: principal.rateLimitPerHour ?? this.config.rateLimit.perHour,
    };
  }

  /** Counts one request; `undefined` means Redis is down and the policy is deny. */
  async consume(principal: RateLimitedPrincipal): Promise<RateLimitDecision | undefined> {
    const limits = this.limitsFor(principal);
    return this.redis.withFallback(
      (client) => consumeOnRedis(client, principal.apiKeyId, limits),
      () => {
        if (this.redis.isConfigured && this.policy === 'deny') return undefined;
        return this.local.consume(principal.apiKeyId, limits);
      },
    );
  }

  /**
   * Counts one request and puts the rate-limit headers on the reply; throws the 429 (with
   * Retry-After) or, under the deny policy without Redis, the 503.
   */
  async enforce(principal: RateLimitedPrincipal, reply?: HeaderTarget): Promise<RateLimitDecision> {
    const decision = await this.consume(principal);
    if (!decision) {
      rateLimitRejections.inc({ scope: 'redis_unavailable' });
      throw rateLimiterUnavailable();
    }
    const headers = rateLimitHeaders(decision);
    if (reply) setHeaders(reply, headers);
    if (!decision.allowed) {
      rateLimitRejections.inc({ scope: decision.scope! });
      const hour = decision.scope === 'key_hour';
      throw rateLimitExceeded(
        hour ? 'hour' : 'minute',
        hour ? decision.limits.perHour : decision.limits.perMinute,
        headers,
      );
    }
    return decision;
  }

  /**
   * For RateLimitAdmission: counts a request authenticated by an API key once, however often it
   * is called for it; requests without a Principal (admin, health) are untouched.
   */
  async enforceOnce(
    request: { principal?: RateLimitedPrincipal },
    reply?: HeaderTarget,
  ): Promise<RateLimitDecision | undefined> {
    const principal = request.principal;
    if (!principal) return undefined;
    const marked = request as { [COUNTED]?: RateLimitDecision };
    if (marked[COUNTED]) return marked[COUNTED];
    const decision = await this.enforce(principal, reply);
    marked[COUNTED] = decision;
    return decision;
  }

  /** Test and CLI helper: forgets the per-process counters. */
  resetLocal(): void {
    this.local.clear();
  }
}

/**
 * Headers go on the raw response: a streaming handler that writes the SSE head itself
 * (reply.raw.writeHead) would drop headers set only on the Fastify reply. Node merges setHeader
 * values into writeHead, so the normal path sends them too.
 */
function setHeaders(target: HeaderTarget, headers: Record<string, string>): void {
  const raw: Partial<RawResponse> = target.raw ?? target;
  const entries = Object.entries(headers);
  if (typeof raw.setHeader === 'function' && !raw.headersSent) {
    for (const [name, value] of entries) raw.setHeader(name, value);
  } else if (typeof target.header === 'function') {
    for (const [name, value] of entries) target.header(name, value);
  }
}
