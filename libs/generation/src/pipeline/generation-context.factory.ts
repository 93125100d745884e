import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Principal } from '@app/auth';
import { APP_CONFIG, AppConfig } from '@app/config';
import { annotateRequest } from '@app/observability';
import { Cancellation } from '../upstream/cancellation';
import { ClientAborted } from '../upstream/upstream.types';
import { GenerationContext, GenerationKind } from './generation-context';

/** Builds the context of an HTTP generation request (job workers build theirs directly). */
@Injectable()
export class GenerationContextFactory {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  forHttp(
    request: FastifyRequest,
    reply: FastifyReply,
    principal: Principal,
    kind: GenerationKind,
    body: Record<string, unknown>,
  ): GenerationContext {
    const controller = new Cancellation();
    // The response closing before it finished means the client left: cancel the upstream.
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) controller.abort(new ClientAborted());
    });
    // The client may have left already, while the request was authenticated and admitted: its
    // 'close' is past, and an answer nobody reads must not be generated and charged.
    if (reply.raw.destroyed) controller.abort(new ClientAborted());
    const headers: Record<string, string | undefined> = {};
    for (const [name, value] of Object.entries(request.headers))
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    return {
      requestId: String(request.id),
      kind,
      principal,
      body,
      model: String(body.model),
      stream: body.stream === true,
      headers,
      responseHeaders: {},
      signal: controller.signal,
      state: new Map(),
      startedAt: performance.now(),
      deadline: Date.now() + this.config.upstream.deadlineMs,
      onOutcome: (outcome) =>
        annotateRequest(request, {
          userId: principal.userId,
          apiKeyId: principal.apiKeyId,
          model: outcome.model,
          provider: outcome.provider ?? undefined,
          promptTokens: outcome.usage?.prompt_tokens,
          completionTokens: outcome.usage?.completion_tokens,
          cached: outcome.cached,
          error: outcome.error?.code ?? outcome.endReason,
        }),
      annotate: (fields) => annotateRequest(request, fields),
    };
  }
}
