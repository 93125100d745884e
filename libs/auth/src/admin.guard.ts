import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { ApiError } from '@app/observability';
import { AdminTokenService } from './admin-token.service';
import { countAuthFailure } from './auth.metrics';

/**
 * Every /admin route: a valid HS256 JWT whose role is admin. An API key sent here is not a
 * JWT and fails verification, so consumer keys never reach admin routes.
 */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(private readonly tokens: AdminTokenService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const check = await this.tokens.verify(request.headers);
    if (!check.ok) {
      countAuthFailure(check.reason === 'missing' ? 'missing' : 'bad_jwt');
      throw ApiError.unauthorized(
        check.reason === 'missing'
          ? 'Missing admin token. Send "Authorization: Bearer <jwt>" from POST /auth/token.'
          : 'Invalid or expired admin token.',
        'invalid_token',
      );
    }
    if (check.claims.role !== 'admin') {
      countAuthFailure('scope');
      throw ApiError.forbidden('This route needs an admin.');
    }
    request.admin = { userId: check.claims.sub, username: check.claims.username, role: 'admin' };
    return true;
  }
}
