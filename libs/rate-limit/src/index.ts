export { RateLimitModule } from './rate-limit.module';
export { RateLimitService } from './rate-limit.service';
export type { RateLimitedPrincipal, HeaderTarget } from './rate-limit.service';
export { RateLimitGuard } from './rate-limit.guard';
export { RateLimitInterceptor } from './rate-limit.interceptor';
export { SkipRateLimit } from './rate-limit.decorators';
export { LoginThrottleGuard, LOGIN_IP_THROTTLER } from './login-throttle.guard';
export { rateLimitHeaders, formatReset, retryAfterSeconds } from './rate-limit.window';
export type { Limits, RateLimitDecision, RateLimitScope } from './rate-limit.window';
