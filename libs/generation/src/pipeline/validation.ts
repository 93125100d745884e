import { z } from 'zod';
import { ApiError, inputIssueMessage } from '@app/observability';

/** `messages[0].content` style path, as OpenAI names parameters. */
function paramOf(path: PropertyKey[]): string | null {
  if (path.length === 0) return null;
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
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
  // The chat message union's "role must be one of …" is also zod's message for a message that
  // is not an object: a wrong type is worded by type here, whatever the schema says.
  const worded = inputIssueMessage(issue, body, param, { overrideSchemaMessages: true });
  throw ApiError.badRequest(
    worded ?? (param ? `${param}: ${issue.message}` : issue.message),
    param,
  );
}
