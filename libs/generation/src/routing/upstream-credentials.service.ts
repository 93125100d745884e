import { Injectable } from '@nestjs/common';
import { ApiError } from '@app/observability';
import { ProviderConfig } from '../providers/provider.types';
import type { CancelSignal } from '../upstream/cancellation';
import { AttemptOutcome, UpstreamAuth } from '../upstream/upstream.types';

/** How one attempt went, as told to whoever lent its credential. */
export interface AttemptReport {
  requestId: string;
  provider: string;
  model: string;
  outcome: AttemptOutcome;
  status?: number;
  latencyMs: number;
}

/** A credential lent for one attempt; `report` is called exactly once when the attempt ends. */
export interface CredentialLease {
  auth: UpstreamAuth;
  /** Shown in logs to tell credentials apart (an id or masked prefix, never the secret). */
  label?: string;
  /** May return a promise: the recorder waits for it, so the next request sees the outcome. */
  report(report: AttemptReport): void | Promise<void>;
}

/**
 * Lends credentials for providers with `session_auth: bearer|cookie` (the session pool).
 * `acquire` throws ApiError 503 `no_healthy_sessions` when it has none for the provider.
 */
export interface CredentialSource {
  acquire(
    provider: ProviderConfig,
    request: { requestId: string; model: string; signal: CancelSignal },
  ): Promise<CredentialLease>;
}

const noReport = () => undefined;

/**
 * Where each attempt gets its upstream credential: the provider's api_key, or — for session_auth
 * bearer|cookie — a lease from the session pool that the sessions module registers here.
 */
@Injectable()
export class UpstreamCredentials {
  private source?: CredentialSource;

  useSessionPool(source: CredentialSource): void {
    this.source = source;
  }

  async acquire(
    provider: ProviderConfig,
    request: { requestId: string; model: string; signal: CancelSignal },
  ): Promise<CredentialLease> {
    if (provider.sessionAuth === 'none') {
      const auth: UpstreamAuth = provider.apiKey
        ? { type: 'bearer', token: provider.apiKey }
        : { type: 'none' };
      return { auth, report: noReport };
    }
    if (!this.source)
      throw ApiError.unavailable(
        `Provider ${provider.name} takes credentials from the session pool, which is not available`,
        'no_healthy_sessions',
      );
    return this.source.acquire(provider, request);
  }
}
