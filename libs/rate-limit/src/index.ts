// LoginThrottleGuard first: @app/auth imports it from here while this barrel may still be
// loading (rate-limit.admission imports @app/auth), so it must be exported before the module.
export { LoginThrottleGuard, LOGIN_IP_THROTTLER } from './login-throttle.guard';
export { RateLimitModule } from './rate-limit.module';
export { RateLimitService } from './rate-limit.service';
export type { RateLimitedPrincipal, HeaderTarget } from './rate-limit.service';
export { RateLimitAdmission } from './rate-limit.admission';
export { SkipRateLimit } from './rate-limit.decorators';
export { rateLimitHeaders, formatReset, retryAfterSeconds } from './rate-limit.window';
export type { Limits, RateLimitDecision, RateLimitScope } from './rate-limit.window';
