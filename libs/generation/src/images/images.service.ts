import { Injectable } from '@nestjs/common';
import { ApiError } from '@app/observability';
import { GenerationContext, GenerationOutcome } from '../pipeline/generation-context';
import { GenerationPipeline } from '../pipeline/generation-pipeline.service';
import { ProviderRegistry } from '../providers/provider-registry.service';
import { UpstreamRouter } from '../routing/upstream-router.service';
import { ImagesResponse } from '../upstream/upstream.types';

/** POST /v1/images/generations: the chat flow's steps, without streaming. */
@Injectable()
export class ImagesService {
  constructor(
    private readonly registry: ProviderRegistry,
    private readonly pipeline: GenerationPipeline,
    private readonly router: UpstreamRouter,
  ) {}

  async generate(ctx: GenerationContext): Promise<ImagesResponse> {
    let finished = false;
    const finish = async (outcome: GenerationOutcome) => {
      finished = true;
      ctx.onOutcome?.(outcome);
      await this.pipeline.finish(ctx, outcome);
    };
    const base = (provider: string | null, attempts: number) => ({
      model: ctx.model,
      provider,
      cached: false,
      usage: null,
      attempts,
      latencyMs: performance.now() - ctx.startedAt,
    });
    try {
      const routes = this.registry.routesFor(ctx.model);
      await this.pipeline.admit(ctx);
      await this.pipeline.prepare(ctx);
      const stored = await this.pipeline.lookup(ctx);
      if (stored) {
        const body = stored.body as ImagesResponse;
        ctx.responseHeaders['x-provider'] = stored.provider;
        await finish({
          ...base(stored.provider, 0),
          status: 'succeeded',
          statusCode: 200,
          cached: true,
          images: body.data.length,
          imagesResponse: body,
        });
        return body;
      }
      await this.pipeline.beforeUpstream(ctx);
      const routed = await this.router.route(
        { requestId: ctx.requestId, model: ctx.model, signal: ctx.signal, deadline: ctx.deadline },
        routes,
        (client, call) => client.images(ctx.body, call),
      );
      ctx.responseHeaders['x-provider'] = routed.provider.name;
      await finish({
        ...base(routed.provider.name, routed.attempts),
        status: 'succeeded',
        statusCode: 200,
        images: routed.value.data.length,
        imagesResponse: routed.value,
      });
      return routed.value;
    } catch (err) {
      if (!finished) {
        const error = err instanceof ApiError ? err : undefined;
        await finish({
          ...base(null, 0),
          status: 'failed',
          statusCode: error?.status ?? 500,
          images: 0,
          error,
        });
      }
      throw err;
    }
  }
}
