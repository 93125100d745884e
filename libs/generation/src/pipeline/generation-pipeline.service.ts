import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '@app/observability';
import { GenerationContext, GenerationOutcome, StoredAnswer } from './generation-context';

/**
 * A module that takes part in every generation request (rate limits, conversations, cache,
 * credits, request logs). Every step is optional; steps run in `order` (lower first).
 *
 *   1. admit(ctx)           refuse early: throw ApiError (429, 402, …)
 *   2. prepare(ctx)         rewrite ctx.body (conversation history)
 *   3. lookup(ctx)          answer without an upstream call (cache, idempotent replay); first wins
 *   4. beforeUpstream(ctx)  last step before the upstream call (credit reservation); may throw,
 *                           or leave its work in ctx.alongsideUpstream when the caller allows
 *   5. finish(ctx, outcome) once per request, whatever happened, even when a step above threw
 *                           (settle or refund credits, store in cache, append the conversation)
 */
export interface GenerationPlugin {
  readonly name: string;
  /** Suggested: rate limit 10, conversations 20, cache 30, credits 40. Default 100. */
  readonly order?: number;
  admit?(ctx: GenerationContext): Promise<void>;
  prepare?(ctx: GenerationContext): Promise<void>;
  lookup?(ctx: GenerationContext): Promise<StoredAnswer | undefined>;
  beforeUpstream?(ctx: GenerationContext): Promise<void>;
  finish?(ctx: GenerationContext, outcome: GenerationOutcome): Promise<void>;
}

/** Where plugins register (from their module's onModuleInit). */
@Injectable()
export class GenerationPipeline {
  private plugins: GenerationPlugin[] = [];

  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  use(plugin: GenerationPlugin): void {
    this.plugins = [...this.plugins.filter((p) => p.name !== plugin.name), plugin].sort(
      (a, b) => (a.order ?? 100) - (b.order ?? 100),
    );
  }

  list(): readonly GenerationPlugin[] {
    return this.plugins;
  }

  async admit(ctx: GenerationContext): Promise<void> {
    for (const p of this.plugins) await p.admit?.(ctx);
  }

  async prepare(ctx: GenerationContext): Promise<void> {
    for (const p of this.plugins) await p.prepare?.(ctx);
  }

  async lookup(ctx: GenerationContext): Promise<StoredAnswer | undefined> {
    for (const p of this.plugins) {
      const answer = await p.lookup?.(ctx);
      if (answer) return answer;
    }
    return undefined;
  }

  async beforeUpstream(ctx: GenerationContext): Promise<void> {
    for (const p of this.plugins) await p.beforeUpstream?.(ctx);
  }

  /**
   * Every plugin hears the outcome; one failing does not stop the others or the response. Work
   * left running alongside the upstream call ends first, so a hold that commits after the
   * upstream failed is still there to refund.
   */
  async finish(ctx: GenerationContext, outcome: GenerationOutcome): Promise<void> {
    if (ctx.alongsideUpstream?.length) await Promise.allSettled(ctx.alongsideUpstream);
    for (const p of this.plugins) {
      if (!p.finish) continue;
      try {
        await p.finish(ctx, outcome);
      } catch (err) {
        this.logger.error(
          { err, plugin: p.name, request_id: ctx.requestId, job_id: ctx.jobId },
          'generation plugin failed in finish',
        );
      }
    }
  }
}
