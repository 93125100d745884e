import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ApiError, counter } from '@app/observability';
import { RedisService } from '@app/redis';

// Shared with libs/rate-limit (same name and labels: the registry returns one metric).
const rateLimitRejections = counter(
  'gateway_rate_limit_rejections_total',
  'Requests refused by a rate limit, by scope',
  ['scope'],
);

/**
 * Failed logins counted per client IP and per username in a fixed window (Redis, shared by all
 * replicas; process memory while Redis is away). At the limit, POST /auth/token answers 429
 * with Retry-After until the window ends, without checking the password.
 */
@Injectable()
export class LoginLimiter {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly redis: RedisService,
  ) {}

  private get windowMs(): number {
    return this.config.auth.loginLockoutWindowSeconds * 1000;
  }

  private keys(ip: string, username: string): { ip: string; user: string } {
    // Hashed so odd or huge usernames make tidy Redis keys.
    const user = createHash('sha256').update(username.toLowerCase()).digest('hex').slice(0, 32);
    return { ip: `auth:login-failures:ip:${ip}`, user: `auth:login-failures:user:${user}` };
  }

  /**
   * Takes one attempt out of both failure budgets before the password is checked; the attempt
   * stays counted as a failure unless `recordSuccess` or `release` gives it back. Counting first
   * is what makes the limit hold for attempts sent at once: checking the counts and adding the
   * failure afterwards let every concurrent guess pass the check before any of them failed.
   * At the limit: 429 with Retry-After (the slot goes back at once), the password unchecked.
   */
  async begin(ip: string, username: string): Promise<void> {
    const keys = this.keys(ip, username);
    const [byIp, byUser] = await Promise.all([
      this.redis.store.incrBy(keys.ip, 1, this.windowMs),
      this.redis.store.incrBy(keys.user, 1, this.windowMs),
    ]);
    const ipBlockedMs = byIp.value > this.config.auth.loginMaxFailuresPerIp ? byIp.ttlMs : 0;
    const userBlockedMs =
      byUser.value > this.config.auth.loginMaxFailuresPerUser ? byUser.ttlMs : 0;
    const waitMs = Math.max(ipBlockedMs, userBlockedMs);
    if (waitMs <= 0) return;
    await this.release(ip, username);
    const scope = userBlockedMs >= ipBlockedMs ? 'username' : 'address';
    rateLimitRejections.inc({ scope: scope === 'username' ? 'login_username' : 'login_ip' });
    const seconds = Math.max(1, Math.ceil(waitMs / 1000));
    throw new ApiError(
      429,
      'rate_limit_error',
      'rate_limit_exceeded',
      `Too many failed logins for this ${scope}; retry after ${seconds}s`,
      null,
      { 'retry-after': String(seconds) },
    );
  }

  /** Gives back the attempt `begin` took (it was refused, or ended without a verdict). */
  async release(ip: string, username: string): Promise<void> {
    const keys = this.keys(ip, username);
    await Promise.all([
      this.redis.store.incrBy(keys.ip, -1, this.windowMs),
      this.redis.store.incrBy(keys.user, -1, this.windowMs),
    ]);
  }

  /**
   * A successful login clears the username's count and gives the address back the attempt
   * `begin` took (earlier failures from it stay counted).
   */
  async recordSuccess(ip: string, username: string): Promise<void> {
    const keys = this.keys(ip, username);
    await Promise.all([
      this.redis.store.del(keys.user),
      this.redis.store.incrBy(keys.ip, -1, this.windowMs),
    ]);
  }
}
