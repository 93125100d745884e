import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { annotateRequest } from '@app/observability';
import { ApiKeyAuthService } from './api-key-auth.service';
import { REQUIRED_SCOPES } from './auth.decorators';
import { PrincipalAdmission } from './principal-admission';

/**
 * Public routes: `@UseGuards(ApiKeyGuard) @RequireScopes('chat')`. Attaches the Principal;
 * a JWT presented here is just an unknown key, so an admin token never pays for generations.
 * Then runs the registered PrincipalAdmission hooks (the per-key rate limit), so every route
 * that has a Principal passed them before pipes and the handler run.
 */
@Injectable()
export class ApiKeyGuard implements CanActivate {
  constructor(
    private readonly auth: ApiKeyAuthService,
    private readonly reflector: Reflector,
    private readonly admission: PrincipalAdmission,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const scopes =
      this.reflector.getAllAndOverride<string[] | undefined>(REQUIRED_SCOPES, [
        context.getHandler(),
        context.getClass(),
      ]) ?? [];
    // Annotated as soon as the key is known, so request_logs show which key a 401/403 was for.
    const principal = await this.auth.authenticateHeaders(request.headers, scopes, (fields) =>
      annotateRequest(request, fields),
    );
    request.principal = principal;
    await this.admission.admit(
      context,
      request as FastifyRequest & { principal: typeof principal },
      http.getResponse<FastifyReply>(),
    );
    return true;
  }
}
