import { ApiError } from '@app/observability';

export function rateLimitExceeded(
  window: 'minute' | 'hour',
  limit: number,
  headers: Record<string, string>,
): ApiError {
  return new ApiError(
    429,
    'rate_limit_error',
    'rate_limit_exceeded',
    `Rate limit reached: ${limit} requests per ${window} for this API key. Retry after ${headers['retry-after']}s.`,
    null,
    headers,
  );
}

/** RATE_LIMIT_ON_REDIS_FAILURE=deny: without Redis no request can be counted globally. */
export function rateLimiterUnavailable(): ApiError {
  return ApiError.unavailable(
    'Rate limiter unavailable (Redis unreachable and RATE_LIMIT_ON_REDIS_FAILURE=deny); retry shortly',
    'rate_limiter_unavailable',
    { 'retry-after': '1' },
  );
}

export function tooManyLoginAttempts(scope: 'ip' | 'username', retryAfter: number): ApiError {
  return new ApiError(
    429,
    'rate_limit_error',
    'rate_limit_exceeded',
    `Too many login attempts from this ${scope === 'ip' ? 'address' : 'username'}; retry after ${retryAfter}s`,
    null,
    { 'retry-after': String(retryAfter) },
  );
}
