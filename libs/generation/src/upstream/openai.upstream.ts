import { Pool } from 'undici';
import type Dispatcher from 'undici/types/dispatcher';
import { ProviderConfig } from '../providers/provider.types';
import type { CancelSignal } from './cancellation';
import { SseParser } from './sse-parser';
import {
  AnswerWithdrawn,
  AttemptTimeout,
  ChatCompletion,
  classifyStatus,
  ImagesResponse,
  SseEvent,
  UpstreamAuth,
  UpstreamCall,
  UpstreamClient,
  UpstreamErrorDetail,
  UpstreamEventStream,
  UpstreamFailure,
} from './upstream.types';

/** A JSON answer bigger than this is refused (b64 images at n=10 stay well below). */
const MAX_JSON_BYTES = 64 * 1024 * 1024;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const REDACTED = '[REDACTED]';
/**
 * A cookie's own values shorter than this (`lang=en`, `theme=1`) are not secrets: redacting them
 * everywhere would only garble the message. The whole Cookie header is always redacted.
 */
const MIN_COOKIE_VALUE_LENGTH = 8;

export interface PoolOptions {
  connections: number;
  connectTimeoutMs: number;
}

/**
 * Any OpenAI-compatible base URL (OpenAI, Groq, OpenRouter, xAI, Ollama, vLLM, llama.cpp) over an
 * undici keep-alive pool: one pool per provider, so a slow provider cannot starve the others.
 */
export class OpenAiUpstream implements UpstreamClient {
  private readonly pool: Pool;
  private readonly basePath: string;

  constructor(
    private readonly provider: ProviderConfig,
    options: PoolOptions,
  ) {
    const url = new URL(provider.baseUrl ?? '');
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(url.origin, {
      connections: options.connections,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 600_000,
      connect: { timeout: options.connectTimeoutMs },
      headersTimeout: provider.timeoutMs,
      bodyTimeout: provider.timeoutMs,
    });
  }

  async chat(body: Record<string, unknown>, call: UpstreamCall): Promise<ChatCompletion> {
    const res = await this.send('/chat/completions', body, call, 'application/json');
    const json = await readJson(res, call);
    if (!isRecord(json) || !Array.isArray(json.choices))
      throw new UpstreamFailure('malformed', 'upstream answered without choices', res.statusCode);
    return json as ChatCompletion;
  }

  async images(body: Record<string, unknown>, call: UpstreamCall): Promise<ImagesResponse> {
    const res = await this.send('/images/generations', body, call, 'application/json');
    const json = await readJson(res, call);
    if (!isRecord(json) || !Array.isArray(json.data))
      throw new UpstreamFailure('malformed', 'upstream answered without data', res.statusCode);
    return json as ImagesResponse;
  }

  async chatStream(
    body: Record<string, unknown>,
    call: UpstreamCall,
  ): Promise<UpstreamEventStream> {
    const res = await this.send('/chat/completions', body, call, 'text/event-stream');
    const type = String(res.headers['content-type'] ?? '');
    if (!type.includes('text/event-stream')) {
      res.body.destroy();
      throw new UpstreamFailure('malformed', `upstream stream has content-type '${type}'`);
    }
    return eventStream(res, call);
  }

  private async send(
    path: string,
    body: Record<string, unknown>,
    call: UpstreamCall,
    accept: string,
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept,
      'x-request-id': call.requestId,
    };
    if (call.auth.type === 'bearer') headers.authorization = `Bearer ${call.auth.token}`;
    if (call.auth.type === 'cookie') headers.cookie = call.auth.cookie;
    let res: Dispatcher.ResponseData;
    try {
      res = await this.pool.request({
        path: `${this.basePath}${path}`,
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        // undici takes any object with aborted, reason and add/removeEventListener.
        signal: call.signal as AbortSignal,
        headersTimeout: call.timeoutMs,
        bodyTimeout: call.idleTimeoutMs,
      });
    } catch (err) {
      throw toFailure(err, call.signal);
    }
    if (res.statusCode >= 200 && res.statusCode < 300) return res;
    const text = await readText(res, MAX_ERROR_BODY_BYTES, call).catch(() => '');
    // Upstreams may echo the credential they were sent ("bad key sk-…"); the detail goes to the
    // log and, for a 400/404/413/422, to the client, so it never carries what this attempt sent.
    const detail = errorDetail(text, (s) => redactCredential(s, call.auth));
    const retryAfter = Number(res.headers['retry-after']);
    throw new UpstreamFailure(
      classifyStatus(res.statusCode),
      `${this.provider.name} answered ${res.statusCode}${detail.message ? `: ${detail.message}` : ''}`,
      res.statusCode,
      detail,
      Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined,
    );
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => this.pool.destroy());
  }
}

/** A JSON object (not an array, not null). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Maps undici and socket errors to the attempt vocabulary. */
export function toFailure(err: unknown, signal: CancelSignal): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  if (signal.aborted) {
    const reason = signal.reason;
    if (reason instanceof AttemptTimeout) return new UpstreamFailure('timeout', reason.message);
    if (reason instanceof AnswerWithdrawn) return new UpstreamFailure('aborted', reason.message);
    return new UpstreamFailure('aborted', 'client closed the connection');
  }
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? '';
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT')
    return new UpstreamFailure('timeout', `upstream timed out (${code})`);
  return new UpstreamFailure('connect_error', `upstream connection failed: ${code || e.message}`);
}

async function readText(
  res: Dispatcher.ResponseData,
  limit: number,
  call: UpstreamCall,
): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > limit) {
        res.body.destroy();
        throw new UpstreamFailure('malformed', `upstream body larger than ${limit} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    throw toFailure(err, call.signal);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(res: Dispatcher.ResponseData, call: UpstreamCall): Promise<unknown> {
  const text = await readText(res, MAX_JSON_BYTES, call);
  try {
    return JSON.parse(text);
  } catch {
    throw new UpstreamFailure('malformed', 'upstream answered with invalid JSON', res.statusCode);
  }
}

/**
 * Replaces every occurrence of the credential an attempt sent (the provider's api_key or the
 * session's bearer token; for a cookie, the header and each of its values) with [REDACTED].
 * For upstream error text only: it runs on the error path, never on an answer.
 */
export function redactCredential(text: string, auth: UpstreamAuth): string {
  for (const secret of sentSecrets(auth)) text = text.replaceAll(secret, REDACTED);
  return text;
}

/**
 * Each secret as sent and as an upstream may quote it back in a URL or form (percent-encoded);
 * longest first, so that a value inside the whole cookie does not split it.
 */
function sentSecrets(auth: UpstreamAuth): string[] {
  if (auth.type === 'none') return [];
  const sent =
    auth.type === 'bearer'
      ? [auth.token]
      : [
          auth.cookie.trim(),
          ...auth.cookie
            .split(';')
            .map((pair) => pair.slice(pair.indexOf('=') + 1).trim())
            .filter((value) => value.length >= MIN_COOKIE_VALUE_LENGTH),
        ];
  const secrets = new Set<string>();
  for (const secret of sent) {
    if (!secret) continue;
    secrets.add(secret);
    secrets.add(encodeURIComponent(secret));
  }
  return [...secrets].sort((a, b) => b.length - a.length);
}

/** The upstream's error fields, each passed through `redact` (they may reach the client). */
function errorDetail(text: string, redact: (s: string) => string): UpstreamErrorDetail {
  const field = (value: unknown) => (typeof value === 'string' ? redact(value) : undefined);
  try {
    const json = JSON.parse(text) as { error?: unknown; message?: unknown };
    const error = json.error;
    if (isRecord(error))
      return {
        message: field(error.message),
        type: field(error.type),
        code: field(error.code),
        param: field(error.param) ?? null,
      };
    if (typeof error === 'string') return { message: redact(error) };
    if (typeof json.message === 'string') return { message: redact(json.message) };
  } catch {
    // not JSON: fall through
  }
  // Redacted before the cut, so that a credential across the 300th character leaves no prefix.
  return { message: redact(text).slice(0, 300) || undefined };
}

function eventStream(res: Dispatcher.ResponseData, call: UpstreamCall): UpstreamEventStream {
  const iterator = sseEvents(res, call);
  return {
    [Symbol.asyncIterator]: () => iterator,
    close: () => {
      if (!res.body.destroyed) res.body.destroy();
    },
  };
}

/**
 * At module level: a generator function declared per stream brings a prototype object, and a
 * hidden class, of its own on every stream (docs/performance.md, item 16).
 */
async function* sseEvents(
  res: Dispatcher.ResponseData,
  call: UpstreamCall,
): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  try {
    for await (const chunk of res.body) yield* parser.push(chunk as Buffer);
    yield* parser.flush();
  } catch (err) {
    throw toFailure(err, call.signal);
  }
}
