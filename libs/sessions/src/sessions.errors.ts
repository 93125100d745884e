import { ApiError } from '@app/observability';

export function noHealthySessions(provider: string): ApiError {
  return ApiError.unavailable(
    `No healthy upstream session is available for provider ${provider}`,
    'no_healthy_sessions',
  );
}

export function sessionNotFound(): ApiError {
  return ApiError.notFound('Session not found', 'session_not_found', 'id');
}

export function duplicateSession(): ApiError {
  return ApiError.conflict('A session with this credential already exists', 'duplicate_session');
}
