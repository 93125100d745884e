import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RateLimitedPrincipal, RateLimitService } from './rate-limit.service';

/**
 * Optional and explicit: `@UseGuards(ApiKeyGuard, RateLimitGuard)` (guards run in the order
 * listed). The global RateLimitInterceptor already limits every API-key route; the guard only
 * moves the check before other guards. A request is counted once either way.
 */
@Injectable()
export class RateLimitGuard implements CanActivate {
  constructor(private readonly rateLimits: RateLimitService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest & { principal?: RateLimitedPrincipal }>();
    const principal = request.principal;
    if (!principal) {
      // A wiring mistake, not a client error: this guard must follow ApiKeyGuard.
      throw new Error('RateLimitGuard used on a route without ApiKeyGuard before it');
    }
    await this.rateLimits.enforceOnce(request, http.getResponse<FastifyReply>());
    return true;
  }
}
