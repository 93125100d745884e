import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RateLimitedPrincipal, RateLimitService } from './rate-limit.service';

/**
 * Public routes: `@UseGuards(ApiKeyGuard, RateLimitGuard)`. Runs after ApiKeyGuard (guards run
 * in the order listed) and before the handler, so a refused request never reaches credits or
 * the upstream: a 429 is never charged.
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
    await this.rateLimits.enforce(principal, http.getResponse<FastifyReply>());
    return true;
  }
}
