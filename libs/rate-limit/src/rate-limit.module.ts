import { Global, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { APP_CONFIG, AppConfig } from '@app/config';
import { RedisService } from '@app/redis';
import { LOGIN_IP_THROTTLER, LoginThrottleGuard } from './login-throttle.guard';
import { RateLimitGuard } from './rate-limit.guard';
import { RateLimitInterceptor } from './rate-limit.interceptor';
import { RateLimitService } from './rate-limit.service';
import { RedisThrottlerStorage } from './redis-throttler.storage';

/**
 * Per-key limits apply to every API-key route through the global RateLimitInterceptor. Global
 * module so any controller can also list RateLimitGuard / LoginThrottleGuard in @UseGuards.
 * ThrottlerModule is configured only for the login limiter; no throttler guard is global.
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
  providers: [
    RateLimitService,
    RateLimitGuard,
    LoginThrottleGuard,
    { provide: APP_INTERCEPTOR, useClass: RateLimitInterceptor },
  ],
  exports: [RateLimitService, RateLimitGuard, LoginThrottleGuard],
})
export class RateLimitModule {}
