import { z } from 'zod';
import { isUuid } from '@app/auth';
import { ApiError, inputIssueMessage } from '@app/observability';
import { priceSchema } from './pricing-file';

const MAX_CREDITS = 1_000_000_000_000;

/**
 * Only the type is checked here: the controller checks the format with `requireUuid`, so a
 * malformed id in a body is the same 400 `invalid_id` as in a path or a query.
 */
const userId = z.string();
const idempotencyKey = z.string().min(1).max(200);
const description = z.string().min(1).max(500);

export const grantCreditsDto = z.strictObject({
  user_id: userId,
  amount: z.number().int().min(1).max(MAX_CREDITS),
  description: description.optional(),
  idempotency_key: idempotencyKey.optional(),
});

export const adjustCreditsDto = z.strictObject({
  user_id: userId,
  amount: z
    .number()
    .int()
    .min(-MAX_CREDITS)
    .max(MAX_CREDITS)
    .refine((n) => n !== 0, 'must not be zero'),
  description: description,
  idempotency_key: idempotencyKey.optional(),
});

export const recalculateDto = z.strictObject({ user_id: userId.optional() });

export const cycleResetDto = z.strictObject({ user_id: userId.optional() });

export const refundRequestDto = z.strictObject({
  request_id: z.string().min(1).max(200),
  reason: description.optional(),
});

export const putPriceDto = z.strictObject({
  per_request: priceSchema.optional(),
  per_1k_prompt_tokens: priceSchema.optional(),
  per_1k_completion_tokens: priceSchema.optional(),
  per_image: priceSchema.optional(),
  per_image_by_size: z.record(z.string().min(1).max(40), priceSchema).optional(),
});

/** Validates input once at the edge; the first problem is a 400 naming the field. */
export function parseDto<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  if (input === undefined || input === null) input = {};
  if (typeof input !== 'object' || Array.isArray(input))
    throw ApiError.badRequest('Request body must be a JSON object');
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  if (issue.code === 'unrecognized_keys') {
    const param = [...issue.path, issue.keys[0]].join('.');
    throw ApiError.badRequest(`Unknown field: ${param}`, param);
  }
  const param = issue.path.length > 0 ? issue.path.join('.') : null;
  const message =
    inputIssueMessage(issue, input, param) ??
    (param ? `${param}: ${issue.message}` : issue.message);
  throw ApiError.badRequest(message, param);
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 200;

export function parseLimit(limit: string | undefined): number {
  if (limit === undefined || limit === '') return DEFAULT_PAGE_SIZE;
  const n = Number(limit);
  if (!Number.isInteger(n) || n < 1 || n > MAX_PAGE_SIZE)
    throw ApiError.badRequest(`limit must be an integer between 1 and ${MAX_PAGE_SIZE}`, 'limit');
  return n;
}

/** The cursor is the (base64url) id of the last entry of the previous page. */
export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!isUuid(id)) throw ApiError.badRequest('cursor is not valid', 'cursor', 'invalid_cursor');
  return id;
}

export function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}
