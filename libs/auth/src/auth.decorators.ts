import { createParamDecorator, ExecutionContext, SetMetadata } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { AdminIdentity, Principal, Scope } from './principal';

export const REQUIRED_SCOPES = 'switchyard:required-scopes';

/** Scopes an API key must hold for this route (checked by ApiKeyGuard; 403 when missing). */
export const RequireScopes = (...scopes: Scope[]) => SetMetadata(REQUIRED_SCOPES, scopes);

/** The Principal that ApiKeyGuard attached to the request. */
export const CurrentPrincipal = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): Principal => {
    const principal = ctx.switchToHttp().getRequest<FastifyRequest>().principal;
    if (!principal) throw new Error('@CurrentPrincipal() used on a route without ApiKeyGuard');
    return principal;
  },
);

/** The admin that AdminGuard resolved from the JWT. */
export const CurrentAdmin = createParamDecorator(
  (_data: unknown, ctx: ExecutionContext): AdminIdentity => {
    const admin = ctx.switchToHttp().getRequest<FastifyRequest>().admin;
    if (!admin) throw new Error('@CurrentAdmin() used on a route without AdminGuard');
    return admin;
  },
);
