import { forwardRef, Inject, Injectable, OnModuleInit } from '@nestjs/common';
import type { ExecutionContext } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { PrincipalAdmission } from '@app/auth';
import type { PrincipalAdmissionHook } from '@app/auth';
import { SKIP_RATE_LIMIT } from './rate-limit.decorators';
import { RateLimitService } from './rate-limit.service';

/**
 * Every route whose ApiKeyGuard attached a Principal is rate limited, so a new public controller
 * cannot forget it: the check is a PrincipalAdmission hook that ApiKeyGuard runs right after
 * authenticating, before pipes and the handler, so a refused request (429, or 503 under
 * RATE_LIMIT_ON_REDIS_FAILURE=deny) never reaches credits or an upstream. @SkipRateLimit() on
 * the handler or controller leaves a route out. Not a global interceptor: one of those makes Nest
 * wrap every request in rxjs and AsyncResource.bind (issue #10).
 */
@Injectable()
export class RateLimitAdmission implements PrincipalAdmissionHook, OnModuleInit {
  readonly name = 'rate-limit';
  readonly order = 10;

  constructor(
    private readonly rateLimits: RateLimitService,
    private readonly reflector: Reflector,
    // forwardRef: @app/auth imports @app/rate-limit (LoginThrottleGuard), so this import may
    // still be unresolved when the class is declared.
    @Inject(forwardRef(() => PrincipalAdmission)) private readonly admission: PrincipalAdmission,
  ) {}

  onModuleInit(): void {
    this.admission.use(this);
  }

  async admit(
    context: ExecutionContext,
    request: FastifyRequest,
    reply: FastifyReply,
  ): Promise<void> {
    const skip = this.reflector.getAllAndOverride<boolean | undefined>(SKIP_RATE_LIMIT, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!skip) await this.rateLimits.enforceOnce(request, reply);
  }
}
