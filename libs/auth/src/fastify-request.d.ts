import 'fastify';
import type { AdminIdentity, Principal } from './principal';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by ApiKeyGuard on public routes. */
    principal?: Principal;
    /** Set by AdminGuard on /admin routes. */
    admin?: AdminIdentity;
  }
}
