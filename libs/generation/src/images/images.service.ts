import { Injectable } from '@nestjs/common';
import { ApiError } from '@app/observability';
import { providerOfFailure } from '../generation.errors';
import {
  GenerationContext,
  generationOutcome,
  OutcomeFields,
} from '../pipeline/generation-context';
import { GenerationPipeline } from '../pipeline/generation-pipeline.service';
import { ProviderRegistry } from '../providers/provider-registry.service';
import { UpstreamRouter } from '../routing/upstream-router.service';
import { isRecord } from '../upstream/openai.upstream';
import { ImagesResponse, UpstreamFailure } from '../upstream/upstream.types';

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
    const finish = async (fields: OutcomeFields) => {
      finished = true;
      const outcome = generationOutcome(ctx, fields);
      ctx.onOutcome?.(outcome);
      await this.pipeline.finish(ctx, outcome);
    };
    try {
      const routes = this.registry.routesFor(ctx.model);
      await this.pipeline.admit(ctx);
      await this.pipeline.prepare(ctx);
      const stored = await this.pipeline.lookup(ctx);
      if (stored) {
        const body = stored.body as ImagesResponse;
        ctx.responseHeaders['x-provider'] = stored.provider;
        await finish({
          status: 'succeeded',
          provider: stored.provider,
          attempts: 0,
          statusCode: 200,
          cached: true,
          replayed: stored.replay === true,
          images: body.data.length,
          imagesResponse: body,
        });
        return body;
      }
      await this.pipeline.beforeUpstream(ctx);
      const routed = await this.router.route(
        {
          requestId: ctx.requestId,
          jobId: ctx.jobId,
          model: ctx.model,
          signal: ctx.signal,
          deadline: ctx.deadline,
        },
        routes,
        async (client, call) => checkedImages(await client.images(ctx.body, call)),
      );
      ctx.responseHeaders['x-provider'] = routed.provider.name;
      await finish({
        status: 'succeeded',
        provider: routed.provider.name,
        attempts: routed.attempts,
        statusCode: 200,
        // The hold covered the n images asked for: an upstream that sends more is not billed more.
        images: Math.min(routed.value.data.length, requestedImages(ctx.body)),
        imagesResponse: routed.value,
      });
      return routed.value;
    } catch (err) {
      if (!finished) {
        const error = err instanceof ApiError ? err : undefined;
        await finish({
          status: 'failed',
          // The provider the router tried last (or refused first): null when it failed before.
          provider: providerOfFailure(err),
          attempts: 0,
          statusCode: error?.status ?? 500,
          error,
        });
      }
      throw err;
    }
  }
}

/** `n` of a validated request: 1–10, 1 when absent or null. */
function requestedImages(body: Record<string, unknown>): number {
  return typeof body.n === 'number' ? body.n : 1;
}

/**
 * An answer is billed per image, so one without images, or with an entry that is no image (not
 * an object with a `url` or `b64_json`), is an invalid upstream answer: the next provider, or a
 * 502 with the hold refunded, never a charge for nothing.
 */
function checkedImages(answer: ImagesResponse): ImagesResponse {
  const images: unknown[] = answer.data;
  if (images.length === 0) throw new UpstreamFailure('malformed', 'upstream answered no image');
  for (const image of images) {
    if (!isRecord(image) || !(isImageText(image.url) || isImageText(image.b64_json)))
      throw new UpstreamFailure('malformed', 'upstream answered an image without url or b64_json');
  }
  return answer;
}

function isImageText(value: unknown): boolean {
  return typeof value === 'string' && value.length > 0;
}
