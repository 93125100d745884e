import type { CancelSignal } from './cancellation';

/**
 * The contract between the router and an upstream provider client (OpenAI-compatible HTTP or the
 * built-in mock). One call = one attempt at one provider.
 */

/** How an attempt authenticates upstream: the provider's api_key, or a session-pool credential. */
export type UpstreamAuth =
  { type: 'none' } | { type: 'bearer'; token: string } | { type: 'cookie'; cookie: string };

export interface UpstreamCall {
  requestId: string;
  auth: UpstreamAuth;
  /** Aborted when the client leaves or the attempt times out (see AttemptTimeout). */
  signal: CancelSignal;
  /** Time allowed to the first byte of the response. */
  timeoutMs: number;
  /** Longest silence allowed between two chunks of a response body. */
  idleTimeoutMs: number;
}

/**
 * What one attempt says, in one bounded vocabulary: metrics label, breaker input, session report.
 */
export type AttemptOutcome =
  | 'success'
  /** Upstream refused the request itself (400, 404, 413, 422): the client's fault, not retried. */
  | 'client_error'
  /** Upstream 401/403: the gateway's credential is bad. */
  | 'auth_error'
  | 'rate_limited'
  /** Other upstream 4xx (402 out of credit, 405, 409…): the provider will not serve us. */
  | 'upstream_rejected'
  | 'server_error'
  | 'timeout'
  | 'connect_error'
  | 'malformed'
  | 'stream_cut'
  /** The client went away. */
  | 'aborted';

/** Outcomes that let the router try the next provider. */
export const RETRYABLE: ReadonlySet<AttemptOutcome> = new Set<AttemptOutcome>([
  'auth_error',
  'rate_limited',
  'upstream_rejected',
  'server_error',
  'timeout',
  'connect_error',
  'malformed',
  'stream_cut',
]);

/** Outcomes that count as a provider fault for its circuit breaker (DESIGN §6). */
export const BREAKER_FAILURES: ReadonlySet<AttemptOutcome> = new Set<AttemptOutcome>([
  'server_error',
  'timeout',
  'connect_error',
  'malformed',
  'stream_cut',
]);

export function classifyStatus(status: number): AttemptOutcome {
  if (status >= 200 && status < 300) return 'success';
  if (status === 401 || status === 403) return 'auth_error';
  if (status === 429) return 'rate_limited';
  if (status === 408) return 'timeout';
  if ([400, 404, 413, 422].includes(status)) return 'client_error';
  if (status >= 500) return 'server_error';
  return 'upstream_rejected';
}

/** What the upstream said in its error body, when it said anything. */
export interface UpstreamErrorDetail {
  message?: string;
  type?: string;
  code?: string;
  param?: string | null;
}

export class UpstreamFailure extends Error {
  constructor(
    readonly outcome: AttemptOutcome,
    message: string,
    readonly status?: number,
    readonly detail: UpstreamErrorDetail = {},
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'UpstreamFailure';
  }
}

/** Abort reasons, so that a timeout and a client leaving are told apart. */
export class AttemptTimeout extends Error {
  constructor(ms: number) {
    super(`upstream did not answer within ${ms} ms`);
    this.name = 'AttemptTimeout';
  }
}
export class ClientAborted extends Error {
  constructor() {
    super('client closed the connection');
    this.name = 'ClientAborted';
  }
}
/** The request no longer wants the answer for a reason of its own (a credit hold refused). */
export class AnswerWithdrawn extends Error {
  constructor(why: string) {
    super(`answer no longer wanted: ${why}`);
    this.name = 'AnswerWithdrawn';
  }
}

export interface SseEvent {
  event?: string;
  data: string;
}

/** An upstream SSE response whose status was 2xx; iterate for events, close() to abort it. */
export interface UpstreamEventStream extends AsyncIterable<SseEvent> {
  close(): void;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** An OpenAI chat.completion object (the fields the gateway reads; the rest passes through). */
export interface ChatCompletion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: string; content: string | null };
    finish_reason: string | null;
  }[];
  usage?: Usage;
  [key: string]: unknown;
}

export interface ImagesResponse {
  created: number;
  data: { url?: string; b64_json?: string; revised_prompt?: string }[];
  [key: string]: unknown;
}

export interface UpstreamClient {
  chat(body: Record<string, unknown>, call: UpstreamCall): Promise<ChatCompletion>;
  /** Resolves once the upstream answered 2xx with an event stream. */
  chatStream(body: Record<string, unknown>, call: UpstreamCall): Promise<UpstreamEventStream>;
  images(body: Record<string, unknown>, call: UpstreamCall): Promise<ImagesResponse>;
  close(): Promise<void>;
}
