import { ApiError } from '@app/observability';

/** Every route for a request was skipped because its breaker is open. */
export function circuitOpenError(names: string[], retryAfterMs: number): ApiError {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return ApiError.unavailable(
    `Circuit breaker open for ${names.join(', ')}; retry in ${seconds}s`,
    'circuit_open',
    { 'retry-after': String(seconds) },
  );
}

export function unknownBreakerError(name: string): ApiError {
  return ApiError.notFound(`No circuit breaker named '${name}'`, 'breaker_not_found', 'name');
}
