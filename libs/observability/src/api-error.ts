/**
 * The one error type every module throws for a client-visible failure. The exception filter
 * turns it into OpenAI's envelope {"error":{"message","type","code","param"}}.
 */
export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'insufficient_credits'
  | 'not_found_error'
  | 'conflict_error'
  | 'rate_limit_error'
  | 'upstream_error'
  | 'service_unavailable'
  | 'server_error';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: ApiErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  static badRequest(
    message: string,
    param: string | null = null,
    code = 'invalid_request',
  ): ApiError {
    return new ApiError(400, 'invalid_request_error', code, message, param);
  }
  static notFound(message: string, code = 'not_found', param: string | null = null): ApiError {
    return new ApiError(404, 'not_found_error', code, message, param);
  }
  static conflict(message: string, code = 'conflict'): ApiError {
    return new ApiError(409, 'conflict_error', code, message);
  }
  static unauthorized(message: string, code = 'invalid_api_key'): ApiError {
    return new ApiError(401, 'authentication_error', code, message);
  }
  static forbidden(message: string, code = 'permission_denied'): ApiError {
    return new ApiError(403, 'permission_error', code, message);
  }
  static unavailable(
    message: string,
    code = 'service_unavailable',
    headers: Record<string, string> = {},
  ): ApiError {
    return new ApiError(503, 'service_unavailable', code, message, null, headers);
  }
}
