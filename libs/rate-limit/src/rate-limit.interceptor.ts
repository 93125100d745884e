import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Observable } from 'rxjs';
import { SKIP_RATE_LIMIT } from './rate-limit.decorators';
import { RateLimitService } from './rate-limit.service';

/**
 * Global: every route whose guards attached an API-key Principal is rate limited, so a new
 * public controller cannot forget it. Interceptors run after all guards (ApiKeyGuard included)
 * and before pipes and the handler, so a refused request never reaches credits or an upstream.
 */
@Injectable()
export class RateLimitInterceptor implements NestInterceptor {
  constructor(
    private readonly rateLimits: RateLimitService,
    private readonly reflector: Reflector,
  ) {}

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    if (context.getType() === 'http') {
      const skip = this.reflector.getAllAndOverride<boolean | undefined>(SKIP_RATE_LIMIT, [
        context.getHandler(),
        context.getClass(),
      ]);
      if (!skip) {
        const http = context.switchToHttp();
        await this.rateLimits.enforceOnce(
          http.getRequest<FastifyRequest>(),
          http.getResponse<FastifyReply>(),
        );
      }
    }
    return next.handle();
  }
}
