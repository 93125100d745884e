import { createHash } from 'node:crypto';
import { ProviderConfig } from '../providers/provider.types';
import type { CancelSignal } from './cancellation';
import { toFailure } from './openai.upstream';
import { estimateTokens, messagesText } from './tokens';
import {
  ChatCompletion,
  classifyStatus,
  ImagesResponse,
  SseEvent,
  UpstreamCall,
  UpstreamClient,
  UpstreamEventStream,
  UpstreamFailure,
} from './upstream.types';

/** A 1x1 transparent PNG, for b64_json image answers. */
const PIXEL_PNG =
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=';

function sleep(ms: number, signal: CancelSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function lastUserText(messages: unknown): string {
  if (!Array.isArray(messages)) return '';
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: string };
    if (m?.role === 'user') return messagesText([m]);
  }
  return '';
}

/**
 * The built-in `mock` provider: answers every model it lists with deterministic content, so the
 * embedded start works with no upstream, and takes latency_ms, chunk_delay_ms, error_rate and
 * fail_status (PROVIDERS_FILE or PATCH /admin/providers) so operators can rehearse failures.
 */
export class MockUpstream implements UpstreamClient {
  constructor(private readonly provider: ProviderConfig) {}

  private get settings() {
    return this.provider.mock;
  }

  /** Waits latency_ms and maybe fails, as the settings say. */
  private async preamble(call: UpstreamCall): Promise<void> {
    try {
      if (this.settings.latency_ms) await sleep(this.settings.latency_ms, call.signal);
    } catch (reason) {
      throw toFailure(reason, call.signal);
    }
    const rate = this.settings.error_rate ?? 0;
    if (rate > 0 && Math.random() < rate) {
      const status = this.settings.fail_status ?? 500;
      throw new UpstreamFailure(
        classifyStatus(status),
        `${this.provider.name} (mock) failed on purpose with ${status}`,
        status,
        { message: `mock failure (error_rate ${rate})` },
      );
    }
  }

  private completionText(body: Record<string, unknown>): string {
    const prompt = lastUserText(body.messages).replace(/\s+/g, ' ').trim().slice(0, 200);
    const words =
      `This is a mock response from ${this.provider.name} to: ${prompt || '(empty)'}`.split(' ');
    const max = Number(body.max_completion_tokens ?? body.max_tokens ?? 0);
    return (max > 0 ? words.slice(0, max) : words).join(' ');
  }

  private idFor(body: unknown): string {
    return `chatcmpl-mock-${createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 24)}`;
  }

  async chat(body: Record<string, unknown>, call: UpstreamCall): Promise<ChatCompletion> {
    await this.preamble(call);
    const text = this.completionText(body);
    const n = Number(body.n ?? 1);
    const promptTokens = estimateTokens(messagesText(body.messages));
    const completionTokens = text.split(' ').length * n;
    return {
      id: this.idFor(body),
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: String(body.model),
      choices: Array.from({ length: n }, (_, index) => ({
        index,
        message: { role: 'assistant', content: text },
        logprobs: null,
        finish_reason: 'stop',
      })),
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      },
    };
  }

  async chatStream(
    body: Record<string, unknown>,
    call: UpstreamCall,
  ): Promise<UpstreamEventStream> {
    await this.preamble(call);
    const text = this.completionText(body);
    const words = text.split(' ');
    const n = Number(body.n ?? 1);
    const id = this.idFor(body);
    const created = Math.floor(Date.now() / 1000);
    const model = String(body.model);
    const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)
      ?.include_usage;
    const promptTokens = estimateTokens(messagesText(body.messages));
    const delay = this.settings.chunk_delay_ms ?? 0;
    const chunk = (choices: unknown[], usage: unknown = undefined) =>
      JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices,
        ...(usage ? { usage } : {}),
      });
    let closed = false;
    async function* events(): AsyncGenerator<SseEvent> {
      const pause = async () => {
        if (delay > 0) await sleep(delay, call.signal);
        else await new Promise((r) => setImmediate(r));
      };
      for (let index = 0; index < n; index++)
        yield {
          data: chunk([{ index, delta: { role: 'assistant', content: '' }, finish_reason: null }]),
        };
      for (let i = 0; i < words.length; i++) {
        await pause();
        if (closed) return;
        const content = i === 0 ? words[i] : ` ${words[i]}`;
        for (let index = 0; index < n; index++)
          yield { data: chunk([{ index, delta: { content }, finish_reason: null }]) };
      }
      for (let index = 0; index < n; index++)
        yield { data: chunk([{ index, delta: {}, finish_reason: 'stop' }]) };
      if (includeUsage) {
        const completionTokens = words.length * n;
        yield {
          data: chunk([], {
            prompt_tokens: promptTokens,
            completion_tokens: completionTokens,
            total_tokens: promptTokens + completionTokens,
          }),
        };
      }
      yield { data: '[DONE]' };
    }
    const iterator = events();
    return {
      [Symbol.asyncIterator]: () => iterator,
      close: () => {
        closed = true;
      },
    };
  }

  async images(body: Record<string, unknown>, call: UpstreamCall): Promise<ImagesResponse> {
    await this.preamble(call);
    const n = Number(body.n ?? 1);
    const digest = createHash('sha256').update(String(body.prompt)).digest('hex').slice(0, 16);
    const b64 = body.response_format === 'b64_json';
    return {
      created: Math.floor(Date.now() / 1000),
      data: Array.from({ length: n }, (_, i) =>
        b64
          ? { b64_json: PIXEL_PNG, revised_prompt: String(body.prompt) }
          : {
              url: `https://mock.switchyard.invalid/images/${digest}-${i}.png`,
              revised_prompt: String(body.prompt),
            },
      ),
    };
  }

  async close(): Promise<void> {}
}
