import { Global, Module } from '@nestjs/common';
import { ThrottlerModule } from '@nestjs/throttler';
import { APP_CONFIG, AppConfig } from '@app/config';
import { RedisService } from '@app/redis';
import { LOGIN_IP_THROTTLER, LoginThrottleGuard } from './login-throttle.guard';
import { RateLimitAdmission } from './rate-limit.admission';
import { RateLimitService } from './rate-limit.service';
import { RedisThrottlerStorage } from './redis-throttler.storage';

/**
 * Per-key limits apply to every API-key route through RateLimitAdmission, a hook ApiKeyGuard
 * runs once it has attached the Principal (no global interceptor or guard). Global module so any
 * controller can list LoginThrottleGuard in @UseGuards. ThrottlerModule is configured only for
 * the login limiter; no throttler guard is global.
 */
@Global()
@Module({
  imports: [
    ThrottlerModule.forRootAsync({
      inject: [APP_CONFIG, RedisService],
      useFactory: (config: AppConfig, redis: RedisService) => ({
        storage: new RedisThrottlerStorage(redis.store),
        setHeaders: false,
        throttlers: [
          {
            name: LOGIN_IP_THROTTLER,
            ttl: 60_000,
            limit: config.rateLimit.loginPerMinute,
          },
        ],
      }),
    }),
  ],
  providers: [RateLimitService, RateLimitAdmission, LoginThrottleGuard],
  exports: [RateLimitService, LoginThrottleGuard],
})
export class RateLimitModule {}
