import { circuitOpenError } from '@app/circuit-breaker';
import { ApiError } from '@app/observability';
import { UpstreamFailure } from './upstream/upstream.types';

/** The upstream refused the request itself (400, 404, 413, 422): the client sees it as its own. */
export function upstreamClientError(failure: UpstreamFailure): ApiError {
  const status = failure.status ?? 400;
  const detail = failure.detail;
  return new ApiError(
    status,
    status === 404 ? 'not_found_error' : 'invalid_request_error',
    detail.code ?? (status === 404 ? 'not_found' : 'invalid_request'),
    detail.message ?? `The upstream provider refused the request (${status})`,
    detail.param ?? null,
  );
}

export function clientGoneError(): ApiError {
  return new ApiError(
    499,
    'invalid_request_error',
    'client_closed_request',
    'Client closed the request',
  );
}

/**
 * The provider a routing failure is about, kept beside the error rather than in it: ApiError is
 * the client's envelope, and this is only for the request log (request_logs.provider, which the
 * runbook's HighErrorRate and CircuitBreakerOpen queries group by) and for the job's log lines.
 */
const failedProvider = new WeakMap<object, string>();

/** Marks `err` as the failure of a request routed to `provider`; returns `err` for `throw`. */
export function routedTo<E>(err: E, provider: string | undefined): E {
  if (provider !== undefined && typeof err === 'object' && err !== null)
    failedProvider.set(err, provider);
  return err;
}

/** The provider a failed request was routed to; null when it failed before routing. */
export function providerOfFailure(err: unknown): string | null {
  return (typeof err === 'object' && err !== null && failedProvider.get(err)) || null;
}

export interface SkippedRoute {
  provider: string;
  retryAfterMs: number;
}

/**
 * Every route failed or was skipped. The client gets the gateway's view, never the upstream's
 * own 401/403: 503 circuit_open when no attempt could be made, else what the last attempt says.
 */
export function routesExhaustedError(
  last: UpstreamFailure | ApiError | undefined,
  skipped: SkippedRoute[],
  deadlineHit: boolean,
): ApiError {
  if (last instanceof ApiError) return last;
  if (!last) {
    if (skipped.length > 0)
      return circuitOpenError(
        skipped.map((s) => s.provider),
        Math.min(...skipped.map((s) => s.retryAfterMs)),
      );
    return new ApiError(
      504,
      'upstream_error',
      'upstream_timeout',
      'The request deadline passed before any provider answered',
    );
  }
  if (deadlineHit || last.outcome === 'timeout')
    return new ApiError(
      504,
      'upstream_error',
      'upstream_timeout',
      'The upstream provider did not answer in time',
    );
  switch (last.outcome) {
    case 'rate_limited': {
      const headers: Record<string, string> = {};
      if (last.retryAfterSeconds !== undefined)
        headers['retry-after'] = String(Math.max(1, Math.ceil(last.retryAfterSeconds)));
      return ApiError.unavailable(
        'Every upstream provider for this model is rate limiting the gateway; retry later',
        'upstream_rate_limited',
        headers,
      );
    }
    case 'auth_error':
      return new ApiError(
        502,
        'upstream_error',
        'upstream_auth_failed',
        'The gateway could not authenticate with the upstream provider',
      );
    case 'malformed':
      return new ApiError(
        502,
        'upstream_error',
        'upstream_error',
        'The upstream provider sent an invalid response',
      );
    default:
      return new ApiError(
        502,
        'upstream_error',
        'upstream_error',
        'The upstream provider failed to answer',
      );
  }
}
