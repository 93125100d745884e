import { z } from 'zod';
import { ApiError, inputIssueMessage } from '@app/observability';

/**
 * Validates a request body (or query) against a zod schema at the edge. The first problem
 * becomes a 400 whose `param` names the offending field.
 */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  let param: string | null = issue.path.length > 0 ? issue.path.join('.') : null;
  if (issue.code === 'unrecognized_keys' && issue.keys.length > 0) {
    param = [...issue.path, issue.keys[0]].join('.');
    throw ApiError.badRequest(`Unknown field: ${param}`, param);
  }
  if (param === null && (input === undefined || input === null || typeof input !== 'object'))
    throw ApiError.badRequest('Request body must be a JSON object');
  const message =
    inputIssueMessage(issue, input, param) ??
    (param ? `${param}: ${issue.message}` : issue.message);
  throw ApiError.badRequest(message, param);
}
