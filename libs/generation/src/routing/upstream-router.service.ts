import { Inject, Injectable } from '@nestjs/common';
import { CircuitBreakerService } from '@app/circuit-breaker';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ApiError } from '@app/observability';
import {
  clientGoneError,
  routedTo,
  routesExhaustedError,
  SkippedRoute,
  upstreamClientError,
} from '../generation.errors';
import { ProviderConfig } from '../providers/provider.types';
import { Cancellation, CancelSignal } from '../upstream/cancellation';
import { redactCredential, toFailure } from '../upstream/openai.upstream';
import { UpstreamClients } from '../upstream/upstream-clients.service';
import {
  AttemptOutcome,
  AttemptTimeout,
  ClientAborted,
  RETRYABLE,
  UpstreamCall,
  UpstreamClient,
  UpstreamFailure,
} from '../upstream/upstream.types';
import { AttemptRecorder } from './attempt-recorder.service';
import { UpstreamCredentials } from './upstream-credentials.service';

export interface RouteRequest {
  requestId: string;
  /** The job the request runs for, on the attempt's log lines. */
  jobId?: string;
  model: string;
  /** The client's signal: aborted when it goes away. */
  signal: CancelSignal;
  /** Epoch ms after which no new attempt starts (UPSTREAM_DEADLINE_MS from the request start). */
  deadline: number;
}

export type AttemptFn<T> = (
  client: UpstreamClient,
  call: UpstreamCall,
  provider: ProviderConfig,
) => Promise<T>;

/** An attempt left open after it succeeded (a stream): `end` reports its final outcome. */
export interface OpenAttempt {
  provider: ProviderConfig;
  /** Time to the first answer (the latency the breaker and metrics record). */
  latencyMs: number;
  end(outcome: AttemptOutcome, detail?: { status?: number; message?: string }): Promise<void>;
}

export interface Routed<T> {
  value: T;
  provider: ProviderConfig;
  attempt: OpenAttempt;
  attempts: number;
}

/** A breaker probe slot outlives the attempt by this much before it is reclaimed. */
const PERMIT_GRACE_MS = 5000;

/**
 * Tries a model's providers best first. Retryable failures (connection, timeout, 5xx, 429,
 * upstream 401/403) move on to the next provider after a short jittered pause, all within one
 * deadline; the client's own 4xx and anything after a stream started are never retried. Each
 * provider is tried at most once per request, so breaker counts stay one-per-request.
 *
 * Hand-written rather than a retry library: every step talks to the shared breaker, the session
 * pool and the recorder, and the loop is over different providers, not repeats of one call.
 *
 * Every error it throws is tagged (`routedTo`) with the provider it is about, for the request
 * log: the provider of the last attempt (or the last one whose session pool was empty) — the
 * failure the client is told about; a provider skipped after it for its open breaker takes no
 * blame. When no attempt was made because every breaker was open (503 `circuit_open`), the
 * first provider refused: the one the request would normally have gone to, so the runbook's
 * "by provider" query names the breaker that matters once (not a list, which would not group).
 */
@Injectable()
export class UpstreamRouter {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly breakers: CircuitBreakerService,
    private readonly clients: UpstreamClients,
    private readonly credentials: UpstreamCredentials,
    private readonly recorder: AttemptRecorder,
  ) {}

  async route<T>(
    request: RouteRequest,
    routes: ProviderConfig[],
    attemptFn: AttemptFn<T>,
    options: { keepOpen?: boolean } = {},
  ): Promise<Routed<T>> {
    const skipped: SkippedRoute[] = [];
    let last: UpstreamFailure | ApiError | undefined;
    let attempts = 0;
    let deadlineHit = false;
    /** The provider `last` is about. */
    let blamed: string | undefined;
    for (const provider of routes) {
      if (request.signal.aborted) throw routedTo(clientGoneError(), blamed);
      if (attempts > 0) await this.backoff(attempts, request);
      const remaining = request.deadline - Date.now();
      if (remaining <= 0) {
        deadlineHit = true;
        break;
      }
      const permit = await this.breakers.acquire(
        provider.name,
        provider.timeoutMs + PERMIT_GRACE_MS,
      );
      if (!permit.allowed) {
        skipped.push({ provider: provider.name, retryAfterMs: permit.retryAfterMs });
        continue;
      }
      let credential;
      try {
        credential = await this.credentials.acquire(provider, request);
      } catch (err) {
        await permit.release('neutral', 0);
        if (!(err instanceof ApiError)) throw routedTo(err, provider.name);
        last = err;
        blamed = provider.name;
        continue;
      }
      attempts++;
      blamed = provider.name;
      const timeoutMs = Math.min(provider.timeoutMs, remaining);
      const controller = new Cancellation();
      // The request's own reason (a client gone, an answer withdrawn) says why the call ended.
      const onClientAbort = () => controller.abort(request.signal.reason ?? new ClientAborted());
      request.signal.addEventListener('abort', onClientAbort, { once: true });
      // A listener added after the abort is never called: a client that left while the permit
      // or the credential was awaited ends this attempt before it reaches the upstream.
      if (request.signal.aborted) onClientAbort();
      const timer = setTimeout(() => controller.abort(new AttemptTimeout(timeoutMs)), timeoutMs);
      const call: UpstreamCall = {
        requestId: request.requestId,
        auth: credential.auth,
        signal: controller.signal,
        timeoutMs,
        idleTimeoutMs: provider.timeoutMs,
      };
      const started = performance.now();
      // The HTTP client already scrubs the upstream's error bodies; a stream's error event is
      // turned into a message elsewhere (first event, mid-stream), so the log line is scrubbed
      // here too, where the credential this attempt sent is known.
      const finish = (
        outcome: AttemptOutcome,
        latencyMs: number,
        detail: { status?: number; message?: string } = {},
      ) =>
        this.recorder.record({
          requestId: request.requestId,
          jobId: request.jobId,
          provider: provider.name,
          model: request.model,
          outcome,
          status: detail.status,
          latencyMs,
          permit,
          credential,
          message: detail.message && redactCredential(detail.message, call.auth),
        });
      try {
        const value = await attemptFn(this.clients.for(provider), call, provider);
        clearTimeout(timer);
        const latencyMs = performance.now() - started;
        let ended = false;
        const attempt: OpenAttempt = {
          provider,
          latencyMs,
          end: async (outcome, detail) => {
            if (ended) return;
            ended = true;
            request.signal.removeEventListener('abort', onClientAbort);
            await finish(outcome, latencyMs, detail);
          },
        };
        if (!options.keepOpen) await attempt.end('success');
        return { value, provider, attempt, attempts };
      } catch (err) {
        clearTimeout(timer);
        request.signal.removeEventListener('abort', onClientAbort);
        const failure = err instanceof UpstreamFailure ? err : toFailure(err, call.signal);
        await finish(failure.outcome, performance.now() - started, {
          status: failure.status,
          message: failure.message,
        });
        if (failure.outcome === 'aborted') throw routedTo(clientGoneError(), provider.name);
        if (failure.outcome === 'client_error')
          throw routedTo(upstreamClientError(failure), provider.name);
        if (!RETRYABLE.has(failure.outcome))
          throw routedTo(routesExhaustedError(failure, [], false), provider.name);
        last = failure;
      }
    }
    throw routedTo(
      routesExhaustedError(last, skipped, deadlineHit),
      blamed ?? skipped[0]?.provider,
    );
  }

  /** Jittered exponential pause before the next provider, never past the deadline. */
  private async backoff(attempts: number, request: RouteRequest): Promise<void> {
    const base = this.config.upstream.retryBackoffMs;
    if (base <= 0) return;
    const ms = Math.min(
      base * 2 ** (attempts - 1) * (0.5 + Math.random() / 2),
      Math.max(0, request.deadline - Date.now()),
    );
    if (ms <= 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        request.signal.removeEventListener('abort', done);
        resolve();
      }
      request.signal.addEventListener('abort', done, { once: true });
    });
  }
}
