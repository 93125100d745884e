import { z } from 'zod';
import { ApiError } from '@app/observability';

/** `messages[0].content` style path, as OpenAI names parameters. */
function paramOf(path: PropertyKey[]): string | null {
  if (path.length === 0) return null;
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/**
 * Whether the body carries a value at `path`. zod 4 leaves `issue.input` unset, so the body
 * itself tells an absent field ("is required") from one of the wrong type (`null` included).
 */
function isPresent(body: unknown, path: PropertyKey[]): boolean {
  let value = body;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return false;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value !== undefined;
}

/** zod's type names in words: `int` → `an integer`. */
const TYPE_WORDS: Record<string, string> = {
  int: 'an integer',
  array: 'an array',
  object: 'an object',
  record: 'an object',
};
const typeWords = (type: string) => TYPE_WORDS[type] ?? `a ${type}`;

/**
 * `expected a number` for a value of the wrong JSON type; for a union of plain types
 * (`stop`, message `content`), every type it takes: `expected a string or an array`.
 */
function typeMismatch(issue: z.core.$ZodIssue): string | null {
  if (issue.code === 'invalid_type') return `expected ${typeWords(issue.expected)}`;
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return null;
  const types = new Set<string>();
  for (const [first, ...rest] of issue.errors) {
    if (rest.length > 0 || first?.code !== 'invalid_type' || first.path.length > 0) return null;
    types.add(typeWords(first.expected));
  }
  return `expected ${[...types].join(' or ')}`;
}

/** Validates a request body once, at the edge; bad input is a 400 naming the parameter. */
export function parseBody<T extends z.ZodTypeAny>(schema: T, body: unknown): z.infer<T> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw ApiError.badRequest('The request body must be a JSON object', null);
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0];
    const where = paramOf([...issue.path, key]) ?? key;
    throw ApiError.badRequest(`Unrecognized request argument supplied: ${where}`, where);
  }
  const param = paramOf(issue.path);
  const missing =
    (issue.code === 'invalid_type' || issue.code === 'invalid_union') &&
    !isPresent(body, issue.path);
  const message = missing ? 'is required' : (typeMismatch(issue) ?? issue.message);
  throw ApiError.badRequest(param ? `${param}: ${message}` : message, param);
}
