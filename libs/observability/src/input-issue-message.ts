import { z } from 'zod';

export interface InputIssueOptions {
  /**
   * Word a wrong type even where the schema has a message of its own for it. By default the
   * schema's message wins (`z.string({ message: 'provider must be a string' })`); a route whose
   * schemas carry messages meant for another issue opts out: the chat message union's
   * "role must be one of …" is also what zod raises for a message that is not an object.
   */
  overrideSchemaMessages?: boolean;
}

/** Issue codes zod raises for an absent or wrongly typed value (`invalid_value`: an enum's). */
const TYPE_CODES = new Set(['invalid_type', 'invalid_union', 'invalid_value']);

/**
 * The one wording every route (/v1 and /admin alike) uses for a body field that is absent or of
 * the wrong JSON type: `<param>: is required`, `<param>: expected a number`, and for a union of
 * plain types `<param>: expected a string or an array`.
 *
 * Null when the route words the issue itself, as it always has: any other issue (a range, a
 * format, an unknown field), a wrong type the schema has a message of its own for, or a
 * body-level issue (no `param`). Routes also compute `param` their own way.
 *
 * `input` is what was parsed: zod 4 leaves `issue.input` unset, so the input itself tells an
 * absent field from a wrongly typed one (`null` included).
 */
export function inputIssueMessage(
  issue: z.core.$ZodIssue,
  input: unknown,
  param: string | null,
  options: InputIssueOptions = {},
): string | null {
  if (param === null || !TYPE_CODES.has(issue.code)) return null;
  const value = valueAt(input, issue.path);
  // A schema's message for a wrong type ("must be a string") says nothing useful about an
  // absent value, so "is required" wins over it.
  if (value === undefined) return `${param}: is required`;
  if (!options.overrideSchemaMessages && !isZodDefault(issue, value)) return null;
  const expected = typeMismatch(issue);
  return expected === null ? null : `${param}: ${expected}`;
}

/** The value at `path`, or undefined when any step of it is absent. */
function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * Whether zod worded `issue` itself, i.e. the schema gave no message of its own: the message is
 * what zod's own fallback (a global custom map, then the locale) says for it.
 */
function isZodDefault(issue: z.core.$ZodIssue, value: unknown): boolean {
  const { customError, localeError } = z.config();
  const raw = { ...issue, input: value } as z.core.$ZodRawIssue;
  const fallback = customError?.(raw) ?? localeError?.(raw);
  const message = typeof fallback === 'string' ? fallback : fallback?.message;
  return issue.message === (message ?? 'Invalid input');
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
