import { Injectable } from '@nestjs/common';
import type { ExecutionContext } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from './principal';

/**
 * A check that every request authenticated by an API key passes before anything else happens
 * (rate limits). ApiKeyGuard runs it right after attaching the Principal, so it covers every
 * public route, a new controller included, and a refusal (throw an ApiError) stops the request
 * before pipes, the handler, credits or an upstream.
 */
export interface PrincipalAdmissionHook {
  readonly name: string;
  /** Hooks run in `order` (lower first). Default 100. */
  readonly order?: number;
  /** The guard's context: read route metadata (Reflector) from its handler and class. */
  admit(
    context: ExecutionContext,
    request: FastifyRequest & { principal: Principal },
    reply: FastifyReply,
  ): Promise<void> | void;
}

/**
 * Where modules register their admission hooks (from their onModuleInit), like
 * GenerationPipeline.use(). Replaces a global interceptor: with no interceptors Nest calls the
 * handler directly instead of wrapping every request in rxjs and AsyncResource.bind.
 */
@Injectable()
export class PrincipalAdmission {
  private hooks: readonly PrincipalAdmissionHook[] = [];

  use(hook: PrincipalAdmissionHook): void {
    this.hooks = [...this.hooks.filter((h) => h.name !== hook.name), hook].sort(
      (a, b) => (a.order ?? 100) - (b.order ?? 100),
    );
  }

  list(): readonly PrincipalAdmissionHook[] {
    return this.hooks;
  }

  async admit(
    context: ExecutionContext,
    request: FastifyRequest & { principal: Principal },
    reply: FastifyReply,
  ): Promise<void> {
    for (const hook of this.hooks) await hook.admit(context, request, reply);
  }
}
