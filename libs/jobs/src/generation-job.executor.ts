import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '@app/config';
import {
  ChatCompletionsService,
  chatRequestSchema,
  GenerationContext,
  GenerationOutcome,
  ImagesService,
  imagesRequestSchema,
  parseBody,
  ProviderRegistry,
} from '@app/generation';
import { ApiError } from '@app/observability';
import {
  GenerationResult,
  JobExecutor,
  JobPrincipal,
  JobRun,
  PREPAID_JOB_STATE,
} from './job-executor';
import { JobType } from './jobs.types';

/**
 * Errors about the job's request name the field inside its `request` object
 * (`request.messages`, `request.model`), as docs/api.md documents them.
 */
function inRequest<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof ApiError && (err.status === 400 || err.code === 'model_not_found')) {
      const param = err.param ? `request.${err.param}` : 'request';
      throw new ApiError(err.status, err.type, err.code, err.message, param, err.headers);
    }
    throw err;
  }
}

function validated(type: JobType, request: Record<string, unknown>): Record<string, unknown> {
  return inRequest(
    () =>
      parseBody(type === 'chat' ? chatRequestSchema : imagesRequestSchema, request) as Record<
        string,
        unknown
      >,
  );
}

/**
 * Runs a job through libs/generation: the same services, routing, fallback, breakers, session
 * pool and pipeline plugins as POST /v1/chat/completions and /v1/images/generations. The
 * context carries PREPAID_JOB_STATE so billing and rate-limit plugins leave the job alone: its
 * credits were reserved at submit and are settled by JobLifecycle, its rate limit was counted
 * at submit.
 */
@Injectable()
export class GenerationJobExecutor extends JobExecutor {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly chat: ChatCompletionsService,
    private readonly images: ImagesService,
    private readonly registry: ProviderRegistry,
  ) {
    super();
  }

  validate(type: JobType, request: Record<string, unknown>): void {
    const body = validated(type, request);
    // Unknown model → 404 model_not_found now, not a failed job later.
    inRequest(() => this.registry.routesFor(String(body.model)));
  }

  async execute(
    job: JobRun,
    principal: JobPrincipal,
    signal: AbortSignal,
  ): Promise<GenerationResult> {
    const { type } = job;
    const body = validated(type, job.request);
    let outcome: GenerationOutcome | undefined;
    const ctx: GenerationContext = {
      // The submit's id, so that the run's log lines (upstream attempts…) and the upstream's
      // x-request-id lead back to POST /v1/generations (docs/runbook.md, Async jobs).
      requestId: job.requestId,
      jobId: job.id,
      kind: type === 'chat' ? 'chat' : 'images',
      principal,
      body: { ...body, stream: false },
      model: String(body.model),
      stream: false,
      headers: {},
      responseHeaders: {},
      signal,
      state: new Map<symbol | string, unknown>([[PREPAID_JOB_STATE, job.id]]),
      startedAt: performance.now(),
      deadline: Date.now() + this.config.upstream.deadlineMs,
      onOutcome: (o) => (outcome = o),
    };
    if (type === 'image') {
      delete ctx.body.stream;
      const result = await this.images.generate(ctx);
      return {
        result,
        model: ctx.model,
        provider: outcome?.provider ?? undefined,
        cached: outcome?.cached ?? false,
        usage: {
          images: result.data?.length ?? 0,
          size: typeof body.size === 'string' ? body.size : undefined,
        },
      };
    }
    const answer = await this.chat.create(ctx);
    if (answer.type !== 'json') {
      await answer.cancel();
      throw new ApiError(500, 'server_error', 'internal_error', 'unexpected streaming answer');
    }
    const usage = outcome?.usage ?? answer.body.usage ?? null;
    return {
      result: answer.body,
      model: ctx.model,
      provider: answer.provider,
      cached: outcome?.cached ?? false,
      usage: {
        promptTokens: usage?.prompt_tokens ?? 0,
        completionTokens: usage?.completion_tokens ?? 0,
      },
    };
  }
}
