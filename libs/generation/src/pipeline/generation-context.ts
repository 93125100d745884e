import type { Principal } from '@app/auth';
import type { ApiError, RequestAnnotations } from '@app/observability';
import type { CancelSignal } from '../upstream/cancellation';
import type { ChatCompletion, ImagesResponse, Usage } from '../upstream/upstream.types';

export type GenerationKind = 'chat' | 'images';

/**
 * Everything about one generation request, from the controller (or a job worker) to the end.
 * Plugins read it, may rewrite `body` in `prepare`, and keep their own data in `state`.
 */
export interface GenerationContext {
  /** The request's id; for a job, the id of its submit (POST /v1/generations), not the job's. */
  requestId: string;
  /** Set by job workers: every log line about the generation carries it as `job_id`. */
  jobId?: string;
  kind: GenerationKind;
  principal: Principal;
  /** The validated request body as it will be sent upstream (model, messages, …). */
  body: Record<string, unknown>;
  model: string;
  stream: boolean;
  /** The client's request headers, lower-case (x-conversation-id, idempotency-key, …). */
  headers: Record<string, string | undefined>;
  /** Headers the response will carry (x-provider, x-cache, …); plugins may add theirs. */
  responseHeaders: Record<string, string>;
  /** Aborted when the client goes away (or a job is cancelled). */
  signal: CancelSignal;
  /** Per-plugin scratch space (a credit reservation, a cache key…); key by a Symbol. */
  state: Map<symbol | string, unknown>;
  /** performance.now() at the start, for latency. */
  startedAt: number;
  /** Epoch ms by which an upstream must have started answering. */
  deadline: number;
  /** Told the outcome first (the controller annotates the request log; a job stores it). */
  onOutcome?: (outcome: GenerationOutcome) => void;
  /** Adds fields to the request's log line later than the outcome (credits, known after settle). */
  annotate?: (fields: RequestAnnotations) => void;
  /**
   * Set (to an empty list) by a caller that can run the upstream call alongside beforeUpstream's
   * work: a plugin may then push that work (a credit hold) here instead of waiting for it. The
   * caller lets nothing of the answer reach the client until every entry has resolved, and
   * aborts the upstream call when one rejects; GenerationPipeline.finish waits for them first.
   * Entries must already be marked handled (`p.catch(() => undefined)`): they may reject before
   * anyone awaits them.
   */
  alongsideUpstream?: Promise<void>[];
}

/**
 * How a request ended, given once to every plugin's `finish` and annotated on the request log.
 * - succeeded: complete answer delivered (from upstream or from a plugin such as the cache)
 * - partial:   a stream that ended early (client left or upstream cut); `usage` = what was delivered
 * - failed:    nothing was delivered
 */
export interface GenerationOutcome {
  status: 'succeeded' | 'partial' | 'failed';
  /** HTTP status the client got (200 for streams that started). */
  statusCode: number;
  model: string;
  provider: string | null;
  /** True when a plugin answered (cache, idempotent replay) without an upstream call. */
  cached: boolean;
  /**
   * An Idempotency-Key replay: an earlier request's answer again, not an answer to this turn
   * (conversations append nothing for it; a cache hit is a real answer and is not a replay).
   */
  replayed: boolean;
  /** Tokens used; `estimated` when the upstream never said (cut stream). */
  usage: (Usage & { estimated?: boolean }) | null;
  /** Images delivered (image generations). */
  images: number;
  latencyMs: number;
  /** Upstream attempts made. */
  attempts: number;
  error?: ApiError;
  /** The complete chat answer (non-stream, or reassembled from a finished stream). */
  completion?: ChatCompletion;
  imagesResponse?: ImagesResponse;
  /** Why a stream ended early. */
  endReason?: 'client_closed' | 'upstream_cut';
}

/** A stored answer a plugin returns from `lookup` (cache hit, idempotent replay). */
export interface StoredAnswer {
  body: ChatCompletion | ImagesResponse;
  provider: string;
  /** An earlier request's answer again (GenerationOutcome.replayed). */
  replay?: boolean;
}

/** What differs between outcomes; the model and latency come from the context. */
export type OutcomeFields = Pick<
  GenerationOutcome,
  'status' | 'statusCode' | 'provider' | 'attempts'
> &
  Partial<
    Omit<
      GenerationOutcome,
      'status' | 'statusCode' | 'provider' | 'attempts' | 'model' | 'latencyMs'
    >
  >;

/**
 * Every outcome is made by this one literal, with every field, in one order. Not as
 * `{ ...base, status, … }`: on Node 20 (V8 11) an object made by a spread and then given a
 * property its source lacks gets a hidden class of its own on every call. Those live in the old
 * generation and kept each request's objects alive through young-generation GCs
 * (docs/performance.md, item 16).
 */
export function generationOutcome(
  ctx: GenerationContext,
  fields: OutcomeFields,
): GenerationOutcome {
  return {
    status: fields.status,
    statusCode: fields.statusCode,
    model: ctx.model,
    provider: fields.provider,
    cached: fields.cached ?? false,
    replayed: fields.replayed ?? false,
    usage: fields.usage ?? null,
    images: fields.images ?? 0,
    latencyMs: performance.now() - ctx.startedAt,
    attempts: fields.attempts,
    error: fields.error,
    completion: fields.completion,
    imagesResponse: fields.imagesResponse,
    endReason: fields.endReason,
  };
}
