import { z } from 'zod';
import { ApiError, inputIssueMessage } from '@app/observability';
import { JOB_STATUSES, JOB_TYPES, JobStatus, JobType } from './jobs.types';

export interface SubmitJobInput {
  type: JobType;
  /** The body the synchronous endpoint takes (chat completions or image generations). */
  request: Record<string, unknown>;
}

const submitSchema = z.strictObject({
  type: z.enum(JOB_TYPES, { message: 'type must be "chat" or "image"' }),
  request: z.record(z.string(), z.unknown(), { message: 'request must be an object' }),
});

/** POST /v1/generations body: `{type, request}`; request.model is required. Anything else is a 400. */
export function parseSubmit(body: unknown): SubmitJobInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw ApiError.badRequest('The request body must be a JSON object', null);
  const parsed = submitSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    if (issue.code === 'unrecognized_keys')
      throw ApiError.badRequest(`Unknown field: ${issue.keys[0]}`, issue.keys[0]);
    const param = issue.path.length > 0 ? issue.path.join('.') : null;
    throw ApiError.badRequest(inputIssueMessage(issue, body, param) ?? issue.message, param);
  }
  const { type, request } = parsed.data;
  if (typeof request.model !== 'string' || request.model.length === 0)
    throw ApiError.badRequest('request.model is required', 'request.model');
  if (request.stream === true)
    throw ApiError.badRequest(
      'request.stream is not supported for async jobs; follow the job over /v1/ws instead',
      'request.stream',
    );
  // The request is stored as jsonb, which refuses these: refuse them here, before the hold,
  // rather than hold credits and give them back when the insert fails.
  const unstorable = unstorableString(request, 'request');
  if (unstorable !== null)
    throw ApiError.badRequest(
      `${unstorable}: contains a NUL character or a lone Unicode surrogate, which cannot be stored`,
      unstorable,
      'invalid_value',
    );
  return { type, request };
}

/** The path of the first key or string value jsonb cannot store; null when there is none. */
const UNSTORABLE = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function unstorableString(value: unknown, path: string): string | null {
  const bad = (text: string) => UNSTORABLE.test(text);
  if (typeof value === 'string') return bad(value) ? path : null;
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) {
      const found = unstorableString(item, `${path}[${i}]`);
      if (found !== null) return found;
    }
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  for (const [key, item] of Object.entries(value)) {
    if (bad(key)) return `${path}.${key}`;
    const found = unstorableString(item, `${path}.${key}`);
    if (found !== null) return found;
  }
  return null;
}

const clearStuckSchema = z.object({
  older_than_minutes: z
    .number()
    .int('older_than_minutes must be a whole number of minutes')
    .min(1, 'older_than_minutes must be at least 1')
    .max(525_600, 'older_than_minutes must be at most 525600 (a year)'),
});

/** POST /admin/jobs/clear-stuck body; `older_than_minutes` defaults to the stuck timeout. */
export function parseClearStuck(body: unknown, fallbackMinutes: number): number {
  const value = body === undefined || body === null ? {} : body;
  if (typeof value !== 'object' || Array.isArray(value))
    throw ApiError.badRequest('body must be a JSON object', null);
  const unknown = Object.keys(value).find((k) => k !== 'older_than_minutes');
  if (unknown !== undefined) throw ApiError.badRequest(`Unknown field: ${unknown}`, unknown);
  const minutes = (value as { older_than_minutes?: unknown }).older_than_minutes;
  if (minutes === undefined) return fallbackMinutes;
  const parsed = clearStuckSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = 'older_than_minutes';
    throw ApiError.badRequest(inputIssueMessage(issue, value, param) ?? issue.message, param);
  }
  return parsed.data.older_than_minutes;
}

export function parseStatus(status: string | undefined): JobStatus | undefined {
  if (status === undefined || status === '') return undefined;
  if (!(JOB_STATUSES as readonly string[]).includes(status))
    throw ApiError.badRequest(`status must be one of ${JOB_STATUSES.join(', ')}`, 'status');
  return status as JobStatus;
}
