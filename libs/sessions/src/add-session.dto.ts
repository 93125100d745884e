import { z } from 'zod';
import { ApiError, inputIssueMessage } from '@app/observability';
import type { AddSessionInput } from './sessions.service';

const MAX_CREDENTIAL_LENGTH = 8192;
const MAX_METADATA_BYTES = 8192;

/**
 * Body of POST /admin/sessions (seed 000: {cookie_text, provider, metadata}). The credential is
 * sent upstream as a header, so only what an HTTP header value may hold is taken: control
 * characters (CR/LF header injection) are refused, and so are characters above U+00FF (a ’ or …
 * pasted from a document), which the HTTP client refuses to send at every use.
 */
const schema = z.object({
  cookie_text: z
    .string()
    .transform((v) => v.trim())
    .pipe(
      z
        .string()
        .min(1, 'cookie_text must not be empty')
        .max(
          MAX_CREDENTIAL_LENGTH,
          `cookie_text must be at most ${MAX_CREDENTIAL_LENGTH} characters`,
        )
        .regex(/^[^\x00-\x1f\x7f]*$/, 'cookie_text must not contain control characters')
        .regex(
          /^[\x20-\x7e\x80-\xff]*$/,
          'cookie_text must not contain characters an HTTP header cannot carry (above U+00FF, such as ’ or …)',
        ),
    ),
  provider: z
    .string()
    .regex(
      /^[A-Za-z0-9._:-]{1,100}$/,
      'provider must be a provider name (letters, digits, . _ : -)',
    ),
  metadata: z
    .record(z.string(), z.unknown())
    .optional()
    .refine((m) => m === undefined || JSON.stringify(m).length <= MAX_METADATA_BYTES, {
      message: `metadata must be at most ${MAX_METADATA_BYTES} bytes of JSON`,
    }),
  // The format /admin/keys takes (libs/auth admin-keys.controller): a real calendar date-time
  // with Z or an offset. Date.parse would take "1" (2001) or roll 02-30 over to March. Like a
  // key's, it must be in the future: a session stored already expired would never be used.
  expires_at: z.iso
    .datetime({ offset: true, message: 'expires_at must be an ISO 8601 date-time' })
    .refine((v) => Date.parse(v) > Date.now(), 'expires_at must be in the future')
    .nullable()
    .optional(),
});

export function parseAddSession(body: unknown): AddSessionInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw ApiError.badRequest('Request body must be a JSON object');
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const param = issue.path.map(String).join('.') || null;
    // A wrong type takes the wording every route uses ("expires_at: expected a string"), not the
    // message the schema gives for a bad format or range.
    const message = inputIssueMessage(issue, body, param, { overrideSchemaMessages: true });
    throw ApiError.badRequest(message ?? issue.message, param);
  }
  const v = parsed.data;
  return {
    provider: v.provider,
    credential: v.cookie_text,
    metadata: v.metadata ?? {},
    expiresAt: v.expires_at ? new Date(v.expires_at) : null,
  };
}
