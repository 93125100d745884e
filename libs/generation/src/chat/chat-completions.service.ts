import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { ApiError, LOGGER } from '@app/observability';
import { providerOfFailure } from '../generation.errors';
import {
  GenerationContext,
  GenerationOutcome,
  generationOutcome,
  StoredAnswer,
} from '../pipeline/generation-context';
import { GenerationPipeline } from '../pipeline/generation-pipeline.service';
import { ProviderConfig } from '../providers/provider.types';
import { ProviderRegistry } from '../providers/provider-registry.service';
import { AttemptFn, OpenAttempt, Routed, UpstreamRouter } from '../routing/upstream-router.service';
import { Cancellation, CancelSignal } from '../upstream/cancellation';
import { isRecord, toFailure } from '../upstream/openai.upstream';
import { sseDataFrame } from '../upstream/sse-parser';
import { estimateTokens, messagesText } from '../upstream/tokens';
import {
  AnswerWithdrawn,
  AttemptOutcome,
  ChatCompletion,
  SseEvent,
  UpstreamEventStream,
  UpstreamFailure,
  Usage,
} from '../upstream/upstream.types';
import { ChatResult, SseSink } from './chat-result';
import { ChatChunk, completionToChunks, isUsage, StreamAccumulator } from './stream-accumulator';

interface OpenStream {
  events: UpstreamEventStream;
  iterator: AsyncIterator<SseEvent>;
  first: SseEvent;
}

/** The error event that ends a stream the upstream cut: the envelope of every other error. */
function streamInterrupted(requestId: string): string {
  return JSON.stringify({
    error: {
      message: 'The upstream provider stopped in the middle of the answer',
      type: 'upstream_error',
      code: 'stream_interrupted',
      param: null,
      request_id: requestId,
    },
  });
}

/**
 * POST /v1/chat/completions, for HTTP clients and job workers alike. `create` is the whole flow,
 * one step per line; other modules take part through GenerationPipeline plugins.
 */
@Injectable()
export class ChatCompletionsService {
  constructor(
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly registry: ProviderRegistry,
    private readonly pipeline: GenerationPipeline,
    private readonly router: UpstreamRouter,
  ) {}

  async create(ctx: GenerationContext): Promise<ChatResult> {
    try {
      // 1. Which providers serve the model: an unknown model is a 404 before anything counts.
      const routes = this.registry.routesFor(ctx.model);
      // 2. Admission (rate limits, quotas).
      await this.pipeline.admit(ctx);
      // 3. Shape the upstream request (conversation history).
      await this.pipeline.prepare(ctx);
      // 4. A stored answer (response cache, idempotent replay) skips the upstream.
      const stored = await this.pipeline.lookup(ctx);
      if (stored) return await this.answerFromStore(ctx, stored);
      // 5. Last gate before spending upstream capacity (credit reservation). A hold that will
      //    almost surely pass may still be committing when the upstream call starts.
      ctx.alongsideUpstream = [];
      await this.pipeline.beforeUpstream(ctx);
      // 6. Upstream, with fallback across providers.
      if (ctx.stream) return await this.openStream(ctx, routes);
      return await this.complete(ctx, routes);
    } catch (err) {
      if (!ctx.state.has(FINISHED)) await this.finish(ctx, this.failedOutcome(ctx, err));
      throw err;
    }
  }

  private async complete(ctx: GenerationContext, routes: ProviderConfig[]): Promise<ChatResult> {
    // The literal before the spread, and no `delete`: see generationOutcome for why.
    const body: Record<string, unknown> = { stream: false, ...ctx.body, stream_options: undefined };
    body.stream = false; // a client's `stream: null` is not passed on
    const routed = await this.alongsidePending(
      ctx,
      (signal) =>
        this.router.route({ ...this.routeRequest(ctx), signal }, routes, async (client, call) =>
          checkedCompletion(await client.chat(body, call)),
        ),
      async () => undefined, // a finished call: its answer is simply not sent
    );
    const completion = routed.value;
    ctx.responseHeaders['x-provider'] = routed.provider.name;
    await this.finish(
      ctx,
      generationOutcome(ctx, {
        status: 'succeeded',
        statusCode: 200,
        provider: routed.provider.name,
        attempts: routed.attempts,
        usage: completion.usage ?? this.estimateUsage(ctx, contentOf(completion)),
        completion,
      }),
    );
    return { type: 'json', body: completion, provider: routed.provider.name };
  }

  private async openStream(ctx: GenerationContext, routes: ProviderConfig[]): Promise<ChatResult> {
    const options = ctx.body.stream_options as StreamOptions | null | undefined;
    const clientWantsUsage = options?.include_usage === true;
    // Usage is always asked of the upstream (billing needs it) and passed on only when asked for;
    // the client's other stream options go as they are. The literal before the spread (see
    // generationOutcome). `stream` is already true here.
    const body = {
      stream: true,
      ...ctx.body,
      stream_options: { include_usage: true, include_obfuscation: options?.include_obfuscation },
    };
    // The first event is part of the attempt: a stream that dies before it is retried.
    const openToFirstEvent: AttemptFn<OpenStream> = async (client, call) => {
      const events = await client.chatStream(body, call);
      const iterator = events[Symbol.asyncIterator]();
      try {
        const first = await iterator.next();
        if (first.done)
          throw new UpstreamFailure('stream_cut', 'upstream stream ended before any event');
        // A stream that is over before its first chunk holds no answer: nothing reached the
        // client yet, so it is an invalid answer like any other (next provider, or a 502).
        if (first.value.data === '[DONE]')
          throw new UpstreamFailure('malformed', 'upstream stream ended before any chunk');
        const error = parseChunk(first.value.data).error;
        if (error)
          throw new UpstreamFailure(
            'server_error',
            `upstream stream error: ${error.message ?? 'unknown'}`,
          );
        return { events, iterator, first: first.value };
      } catch (err) {
        events.close();
        throw err;
      }
    };
    const routed = await this.alongsidePending(
      ctx,
      (signal) =>
        this.router.route({ ...this.routeRequest(ctx), signal }, routes, openToFirstEvent, {
          keepOpen: true,
        }),
      async (opened) => {
        opened.value.events.close();
        await opened.attempt.end('aborted');
      },
    );
    ctx.responseHeaders['x-provider'] = routed.provider.name;
    return {
      type: 'stream',
      provider: routed.provider.name,
      pipe: (sink) => this.relay(ctx, routed, clientWantsUsage, sink),
      cancel: async () => {
        routed.value.events.close();
        await this.endStream(
          ctx,
          routed.attempt,
          routed.attempts,
          new StreamAccumulator(ctx.model),
          {
            outcome: 'aborted',
          },
        );
      },
    };
  }

  /** Forwards events as they arrive; a slow client slows the upstream read (backpressure). */
  private async relay(
    ctx: GenerationContext,
    routed: Routed<OpenStream>,
    clientWantsUsage: boolean,
    sink: SseSink,
  ): Promise<void> {
    const { events, iterator, first } = routed.value;
    const acc = new StreamAccumulator(ctx.model);
    let sawDone = false;
    let clientGone = false;
    let cut: UpstreamFailure | undefined;
    const forward = async (event: SseEvent): Promise<void> => {
      if (event.data === '[DONE]') {
        sawDone = true;
        return;
      }
      const chunk = parseChunk(event.data);
      if (chunk.error)
        throw new UpstreamFailure(
          'stream_cut',
          `upstream error mid-stream: ${chunk.error.message ?? ''}`,
        );
      acc.add(chunk);
      const usageOnly = Array.isArray(chunk.choices) && chunk.choices.length === 0 && chunk.usage;
      if (usageOnly && !clientWantsUsage) return;
      if (!(await sink.write(sseDataFrame(event.data)))) clientGone = true;
    };
    try {
      await forward(first);
      while (!sawDone && !clientGone) {
        const next = await iterator.next();
        if (next.done) break;
        await forward(next.value);
      }
      // Some OpenAI-compatible servers close a finished stream without [DONE]: when every
      // choice asked for said why it ended, the answer is whole; otherwise it was cut short.
      if (!sawDone && !clientGone && acc.finished(choicesAskedFor(ctx.body)) && !acc.empty)
        sawDone = true;
      if (!sawDone && !clientGone)
        cut = new UpstreamFailure('stream_cut', 'upstream stream ended without [DONE]');
    } catch (err) {
      if (ctx.signal.aborted) clientGone = true;
      else {
        const failure = err instanceof UpstreamFailure ? err : toFailure(err, ctx.signal);
        cut =
          failure.outcome === 'malformed'
            ? failure
            : new UpstreamFailure('stream_cut', failure.message);
      }
    } finally {
      events.close();
    }
    if (sawDone && acc.empty) {
      // [DONE] after nothing but usage: no answer to cache or bill, and the client is told so.
      sawDone = false;
      cut = new UpstreamFailure('malformed', 'upstream stream ended without any choice');
    }
    if (sawDone && !clientGone) clientGone = !(await sink.write('data: [DONE]\n\n'));
    else if (cut && !clientGone) await sink.write(`data: ${streamInterrupted(ctx.requestId)}\n\n`);
    await this.endStream(ctx, routed.attempt, routed.attempts, acc, {
      outcome: sawDone ? 'success' : clientGone ? 'aborted' : (cut?.outcome ?? 'stream_cut'),
      message: cut?.message,
    });
    sink.end();
  }

  private async endStream(
    ctx: GenerationContext,
    attempt: OpenAttempt,
    attempts: number,
    acc: StreamAccumulator,
    end: { outcome: AttemptOutcome; message?: string },
  ): Promise<void> {
    const complete = end.outcome === 'success';
    await attempt.end(end.outcome, { message: end.message });
    const completion = acc.completion();
    const usage: GenerationOutcome['usage'] =
      acc.usage ?? this.estimateUsage(ctx, null, acc.deliveredChars);
    if (!complete)
      this.logger.warn(
        {
          request_id: ctx.requestId,
          job_id: ctx.jobId,
          provider: attempt.provider.name,
          model: ctx.model,
          reason: end.outcome,
          usage,
        },
        end.outcome === 'aborted' ? 'client left during a stream' : 'upstream stream cut',
      );
    await this.finish(
      ctx,
      generationOutcome(ctx, {
        status: complete ? 'succeeded' : 'partial',
        statusCode: 200,
        provider: attempt.provider.name,
        attempts,
        usage,
        completion: complete ? completion : undefined,
        endReason: complete
          ? undefined
          : end.outcome === 'aborted'
            ? 'client_closed'
            : 'upstream_cut',
      }),
    );
  }

  private async answerFromStore(ctx: GenerationContext, stored: StoredAnswer): Promise<ChatResult> {
    const completion = stored.body as ChatCompletion;
    ctx.responseHeaders['x-provider'] = stored.provider;
    const outcome = generationOutcome(ctx, {
      status: 'succeeded',
      statusCode: 200,
      provider: stored.provider,
      attempts: 0,
      cached: true,
      replayed: stored.replay === true,
      usage: completion.usage ?? null,
      completion,
    });
    if (!ctx.stream) {
      await this.finish(ctx, outcome);
      return { type: 'json', body: completion, provider: stored.provider };
    }
    const wantsUsage =
      (ctx.body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    return {
      type: 'stream',
      provider: stored.provider,
      pipe: async (sink) => {
        let gone = false;
        for (const frame of [...completionToChunks(completion, wantsUsage), '[DONE]']) {
          if (!(await sink.write(`data: ${frame}\n\n`))) {
            gone = true;
            break;
          }
        }
        await this.finish(
          ctx,
          gone ? { ...outcome, status: 'partial', endReason: 'client_closed' } : outcome,
        );
        sink.end();
      },
      cancel: () => this.finish(ctx, { ...outcome, status: 'partial', endReason: 'client_closed' }),
    };
  }

  /**
   * Starts the upstream call while the work beforeUpstream left running (a credit hold) is still
   * committing, and returns only once both are done: nothing of the answer reaches the client
   * before the hold is in the ledger. When that work fails, its error is the request's and the
   * upstream call is aborted (or its answer discarded): the client gets the 402 or 503 and is
   * charged nothing.
   */
  private async alongsidePending<T>(
    ctx: GenerationContext,
    start: (signal: CancelSignal) => Promise<Routed<T>>,
    discard: (routed: Routed<T>) => Promise<void>,
  ): Promise<Routed<T>> {
    const pending = ctx.alongsideUpstream ?? [];
    if (pending.length === 0) return start(ctx.signal);
    const abort = new Cancellation();
    if (ctx.signal.aborted) abort.abort(ctx.signal.reason);
    else ctx.signal.addEventListener('abort', () => abort.abort(ctx.signal.reason), { once: true });
    const upstream = start(abort.signal);
    upstream.catch(() => undefined); // awaited below, but it may fail while the hold commits
    try {
      await Promise.all(pending);
    } catch (err) {
      abort.abort(new AnswerWithdrawn(`credit hold failed: ${(err as Error).message}`));
      await upstream.then(discard, () => undefined);
      throw err;
    }
    return upstream;
  }

  private routeRequest(ctx: GenerationContext) {
    return {
      requestId: ctx.requestId,
      jobId: ctx.jobId,
      model: ctx.model,
      signal: ctx.signal,
      deadline: ctx.deadline,
    };
  }

  private estimateUsage(
    ctx: GenerationContext,
    text: string | null,
    chars = 0,
  ): Usage & { estimated: true } {
    const prompt = estimateTokens(messagesText(ctx.body.messages));
    const completion = text !== null ? estimateTokens(text) : Math.ceil(chars / 4);
    return {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      estimated: true,
    };
  }

  private failedOutcome(ctx: GenerationContext, err: unknown): GenerationOutcome {
    const error = err instanceof ApiError ? err : undefined;
    return generationOutcome(ctx, {
      status: 'failed',
      statusCode: error?.status ?? 500,
      // The provider the router tried last (or refused first): null when it failed before.
      provider: providerOfFailure(err),
      attempts: 0,
      error,
    });
  }

  private async finish(ctx: GenerationContext, outcome: GenerationOutcome): Promise<void> {
    if (ctx.state.has(FINISHED)) return;
    ctx.state.set(FINISHED, true);
    ctx.onOutcome?.(outcome);
    await this.pipeline.finish(ctx, outcome);
  }
}

/** Marks a context whose outcome was handed to the plugins (exactly once). */
const FINISHED = Symbol('generation.finished');

interface StreamOptions {
  include_usage?: boolean;
  include_obfuscation?: boolean;
}

/** Absent, or null: what OpenAI sends for a field that does not apply. */
function isUnset(value: unknown): value is null | undefined {
  return value === undefined || value === null;
}

function parseChunk(data: string): ChatChunk {
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    throw new UpstreamFailure('malformed', 'upstream stream sent invalid JSON');
  }
  if (!isChunk(chunk))
    throw new UpstreamFailure('malformed', 'upstream stream sent a chunk of the wrong shape');
  return chunk;
}

/** The shapes the relay and StreamAccumulator read without a guard of their own. */
function isChunk(chunk: unknown): chunk is ChatChunk {
  if (!isRecord(chunk)) return false;
  const { choices } = chunk;
  if (isUnset(choices)) return true;
  if (!Array.isArray(choices)) return false;
  for (const choice of choices) {
    if (!isRecord(choice)) return false;
    const { delta } = choice;
    if (isUnset(delta)) continue;
    if (!isRecord(delta)) return false;
    const calls = delta.tool_calls;
    if (!isUnset(calls) && !(Array.isArray(calls) && calls.every(isRecord))) return false;
  }
  return true;
}

/**
 * A non-streamed answer as the gateway reads it: message content for a usage estimate and the
 * conversation history, tool calls for a cached replay, usage for billing. Anything else is an
 * invalid upstream answer (the next provider, or a 502), never a 500 or a cached oddity.
 */
function checkedCompletion(completion: ChatCompletion): ChatCompletion {
  const problem = completionProblem(completion);
  if (problem) throw new UpstreamFailure('malformed', `upstream answer ${problem}`);
  return completion;
}

function completionProblem(completion: unknown): string | undefined {
  if (!isRecord(completion)) return 'is not an object';
  const { choices, usage } = completion;
  if (!Array.isArray(choices) || choices.length === 0) return 'has no choices';
  for (const choice of choices) {
    if (!isRecord(choice) || !isRecord(choice.message)) return 'has a choice without a message';
    const { content, tool_calls } = choice.message;
    if (!isUnset(content) && typeof content !== 'string') return 'has content that is not text';
    if (!isUnset(tool_calls) && !Array.isArray(tool_calls))
      return 'has tool_calls that are not a list';
  }
  if (!isUnset(usage) && !isUsage(usage)) return 'has usage that is not token counts';
  return undefined;
}

function contentOf(completion: ChatCompletion): string {
  return completion.choices.map((c) => c.message.content ?? '').join('');
}

/** `n` of a chat request (validated before this point), 1 when absent. */
function choicesAskedFor(body: Record<string, unknown>): number {
  return typeof body.n === 'number' && body.n > 0 ? body.n : 1;
}
