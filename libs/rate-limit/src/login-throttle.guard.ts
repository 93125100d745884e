import { ExecutionContext, Injectable } from '@nestjs/common';
import { ThrottlerGuard } from '@nestjs/throttler';
import type { ThrottlerLimitDetail } from '@nestjs/throttler';
import { tooManyLoginAttempts } from './rate-limit.errors';
import { rateLimitRejections } from './rate-limit.metrics';

/** Name of the throttler that counts /auth/token attempts per client IP. */
export const LOGIN_IP_THROTTLER = 'login_ip';

/**
 * Per-IP limit on `POST /auth/token`, every attempt counted (success or not), through
 * @nestjs/throttler with RedisThrottlerStorage so it holds across replicas. Apply with
 * `@UseGuards(LoginThrottleGuard)`. A 429 uses our envelope and Retry-After, not throttler's.
 */
@Injectable()
export class LoginThrottleGuard extends ThrottlerGuard {
  protected override async throwThrottlingException(
    _context: ExecutionContext,
    detail: ThrottlerLimitDetail,
  ): Promise<void> {
    rateLimitRejections.inc({ scope: LOGIN_IP_THROTTLER });
    throw tooManyLoginAttempts('ip', Math.max(1, detail.timeToBlockExpire));
  }
}
