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

  async assertAllowed(ip: string, username: string): Promise<void> {
    const keys = this.keys(ip, username);
    // incrBy 0 reads the count together with the time left in its window.
    const [byIp, byUser] = await Promise.all([
      this.redis.store.incrBy(keys.ip, 0, this.windowMs),
      this.redis.store.incrBy(keys.user, 0, this.windowMs),
    ]);
    const ipBlockedMs = byIp.value >= this.config.auth.loginMaxFailuresPerIp ? byIp.ttlMs : 0;
    const userBlockedMs =
      byUser.value >= this.config.auth.loginMaxFailuresPerUser ? byUser.ttlMs : 0;
    const waitMs = Math.max(ipBlockedMs, userBlockedMs);
    if (waitMs <= 0) return;
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

  async recordFailure(ip: string, username: string): Promise<void> {
    const keys = this.keys(ip, username);
    await Promise.all([
      this.redis.store.incrBy(keys.ip, 1, this.windowMs),
      this.redis.store.incrBy(keys.user, 1, this.windowMs),
    ]);
  }

  /** A successful login clears the username's count (not the IP's). */
  async recordSuccess(username: string): Promise<void> {
    await this.redis.store.del(this.keys('', username).user);
  }
}
