import { ApiError } from '@app/observability';
import { routesExhaustedError } from './generation.errors';
import { AttemptOutcome, UpstreamFailure } from './upstream/upstream.types';

const failure = (outcome: AttemptOutcome, retryAfter?: number) =>
  new UpstreamFailure(outcome, 'x', undefined, {}, retryAfter);

describe('the error a client gets when every route failed', () => {
  it.each([
    ['server_error', 502, 'upstream_error'],
    ['connect_error', 502, 'upstream_error'],
    ['malformed', 502, 'upstream_error'],
    ['stream_cut', 502, 'upstream_error'],
    ['upstream_rejected', 502, 'upstream_error'],
    ['auth_error', 502, 'upstream_auth_failed'],
    ['timeout', 504, 'upstream_timeout'],
    ['rate_limited', 503, 'upstream_rate_limited'],
  ] as const)('after %s: %d %s', (outcome, status, code) => {
    const err = routesExhaustedError(failure(outcome), [], false);
    expect([err.status, err.code]).toEqual([status, code]);
    expect(err.status).not.toBe(401);
  });

  it('is 503 circuit_open with Retry-After when every breaker was open', () => {
    const err = routesExhaustedError(
      undefined,
      [
        { provider: 'a', retryAfterMs: 4200 },
        { provider: 'b', retryAfterMs: 900 },
      ],
      false,
    );
    expect([err.status, err.code, err.headers['retry-after']]).toEqual([503, 'circuit_open', '1']);
  });

  it('is 504 when the deadline passed, and keeps a pool error such as no_healthy_sessions', () => {
    expect(routesExhaustedError(failure('server_error'), [], true).status).toBe(504);
    const pool = ApiError.unavailable('none', 'no_healthy_sessions');
    expect(routesExhaustedError(pool, [], false)).toBe(pool);
    expect(routesExhaustedError(failure('rate_limited', 2.2), [], false).headers).toEqual({
      'retry-after': '3',
    });
  });
});
