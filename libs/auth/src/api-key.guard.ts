import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { annotateRequest } from '@app/observability';
import { ApiKeyAuthService } from './api-key-auth.service';
import { REQUIRED_SCOPES } from './auth.decorators';

/**
 * Public routes: `@UseGuards(ApiKeyGuard) @RequireScopes('chat')`. Attaches the Principal;
 * a JWT presented here is just an unknown key, so an admin token never pays for generations.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly auth: ApiKeyAuthService,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<FastifyRequest>();
    const scopes =
      this.reflector.getAllAndOverride<string[] | undefined>(REQUIRED_SCOPES, [
        context.getHandler(),
        context.getClass(),
      ]) ?? [];
    // Annotated as soon as the key is known, so request_logs show which key a 401/403 was for.
    request.principal = await this.auth.authenticateHeaders(request.headers, scopes, (fields) =>
      annotateRequest(request, fields),
    );
    return true;
  }
}
