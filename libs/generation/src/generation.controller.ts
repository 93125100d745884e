import { Body, Controller, Get, HttpCode, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiKeyGuard, CurrentPrincipal, Principal, RequireScopes } from '@app/auth';
import { recordAfter } from '@app/observability';
import { ChatCompletionsService } from './chat/chat-completions.service';
import { chatRequestSchema } from './chat/chat-request.schema';
import { ResponseSseSink } from './chat/response-sse.sink';
import { ImagesService } from './images/images.service';
import { imagesRequestSchema } from './images/images-request.schema';
import { GenerationContext } from './pipeline/generation-context';
import { GenerationContextFactory } from './pipeline/generation-context.factory';
import { parseBody } from './pipeline/validation';
import { ProviderRegistry } from './providers/provider-registry.service';

const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
};

/** The OpenAI-compatible public API: the official SDKs work with baseURL pointed here. */
@Controller('v1')
@UseGuards(ApiKeyGuard)
export class GenerationController {
  constructor(
    private readonly registry: ProviderRegistry,
    private readonly contexts: GenerationContextFactory,
    private readonly chat: ChatCompletionsService,
    private readonly images: ImagesService,
  ) {}

  @Get('models')
  models() {
    return {
      object: 'list',
      data: this.registry.models().map((m) => ({
        id: m.id,
        object: 'model',
        created: 0,
        owned_by: m.ownedBy,
      })),
    };
  }

  @Post('chat/completions')
  @HttpCode(200)
  @RequireScopes('chat')
  async chatCompletions(
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
    @Body() body: unknown,
    @CurrentPrincipal() principal: Principal,
  ): Promise<void> {
    const input = parseBody(chatRequestSchema, body) as Record<string, unknown>;
    const ctx = this.contexts.forHttp(request, reply, principal, 'chat', input);
    // A client that leaves mid-answer is logged once the generation has settled what it cost.
    await recordAfter(request, this.answerChat(ctx, reply));
  }

  private async answerChat(ctx: GenerationContext, reply: FastifyReply): Promise<void> {
    const result = await this.chat.create(ctx);
    if (result.type === 'json') {
      await reply.status(200).headers(ctx.responseHeaders).send(result.body);
      return;
    }
    if (ctx.signal.aborted) {
      await result.cancel();
      return;
    }
    // From here the response is ours to write: status and headers go out with the first chunk.
    reply.hijack();
    // A literal first and the spreads after it, not `{ ...headers, 'content-type': … }`: see
    // generationOutcome. The SSE headers are set again last, so they win as before.
    const headers: OutgoingHttpHeaders = {
      'content-type': SSE_HEADERS['content-type'],
      ...(reply.getHeaders() as Record<string, string>),
      ...ctx.responseHeaders,
    };
    reply.raw.writeHead(200, Object.assign(headers, SSE_HEADERS));
    await result.pipe(new ResponseSseSink(reply.raw));
  }

  @Post('images/generations')
  @HttpCode(200)
  @RequireScopes('images')
  async imageGenerations(
    @Req() request: FastifyRequest,
    @Res() reply: FastifyReply,
    @Body() body: unknown,
    @CurrentPrincipal() principal: Principal,
  ): Promise<void> {
    const input = parseBody(imagesRequestSchema, body) as Record<string, unknown>;
    const ctx = this.contexts.forHttp(request, reply, principal, 'images', input);
    const result = await recordAfter(request, this.images.generate(ctx));
    await reply.status(200).headers(ctx.responseHeaders).send(result);
  }
}
