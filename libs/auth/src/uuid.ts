import { ApiError } from '@app/observability';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** A malformed id in a path is the client's mistake (400); a well-formed unknown id is a 404. */
export function requireUuid(value: string, param = 'id'): string {
  if (!isUuid(value)) throw ApiError.badRequest(`${param} must be a UUID`, param, 'invalid_id');
  return value.toLowerCase();
}
