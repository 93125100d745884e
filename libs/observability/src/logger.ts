import pino, { DestinationStream, Logger } from 'pino';

const CENSOR = '[REDACTED]';

/**
 * Fields whose values never reach a log line, at the top of a structured line or one level down
 * (`headers.authorization`, `nested.cookie_text`), and the request headers under `req.headers`.
 * A credential logged by mistake is replaced, whatever logged it.
 */
const SECRET_FIELDS = new Set([
  'authorization',
  'cookie',
  'password',
  'api_key',
  'apiKey',
  'key',
  'token',
  'access_token',
  'cookie_text',
  'secret',
  'Authorization',
  'Cookie',
  'x-api-key',
]);
const REQUEST_HEADER_SECRETS = new Set(['authorization', 'cookie', 'x-api-key']);

/** A field name as a pino path segment: `.token`, or `["x-api-key"]` where a dot cannot go. */
function pathSegment(name: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(name) ? `.${name}` : `["${name}"]`;
}

/**
 * The same rule in the path syntax of pino's `redact` option (a superset of the paths the logger
 * gave pino before redactLogFields). Not used to log: it is what logger.spec.ts and
 * bench/log-line-cost.js hold redactLogFields against.
 */
export const PINO_REDACT_PATHS: readonly string[] = [
  ...[...SECRET_FIELDS].map((name) => pathSegment(name).replace(/^\./, '')),
  ...[...SECRET_FIELDS].map((name) => `*${pathSegment(name)}`),
  ...[...REQUEST_HEADER_SECRETS].map((name) => `req.headers${pathSegment(name)}`),
];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The object with the named fields censored: a copy if any is present, else the object itself. */
function censorFields(value: Record<string, unknown>, names: Set<string>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(value)) {
    if (names.has(key)) {
      out ??= { ...value };
      out[key] = CENSOR;
    }
  }
  return out ?? value;
}

/** One level down, and the request headers two levels down under `req`. */
function censorNested(key: string, value: Record<string, unknown>): Record<string, unknown> {
  const out = censorFields(value, SECRET_FIELDS);
  if (key !== 'req' || !isPlainObject(out.headers)) return out;
  const headers = censorFields(out.headers, REQUEST_HEADER_SECRETS);
  return headers === out.headers ? out : { ...out, headers };
}

/**
 * A structured line's fields with every secret field censored; the caller's object is never
 * changed (a copy is made only when something is censored). Written for pino's `formatters`:
 * its own `redact` option (@pinojs/redact 0.4) parsed every path on every line, about 19 µs
 * a line against 5 for the rest of the line (docs/performance.md, item 19). `err` is left to
 * its serializer, which censors the serialized error the same way.
 */
export function redactLogFields(fields: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const key of Object.keys(fields)) {
    const value = fields[key];
    if (value === undefined || key === 'err') continue;
    let redacted = value;
    if (SECRET_FIELDS.has(key)) redacted = CENSOR;
    else if (isPlainObject(value)) redacted = censorNested(key, value);
    if (redacted !== value) {
      out ??= { ...fields };
      out[key] = redacted;
    }
  }
  return out ?? fields;
}

/** pino's error serializer, then the fields one level down censored as on any other field. */
function serializeError(err: unknown): unknown {
  const serialized: unknown = pino.stdSerializers.err(err as Error);
  return isPlainObject(serialized) ? censorNested('err', serialized) : serialized;
}

const SECRET_PATTERNS: RegExp[] = [
  /sk-[A-Za-z0-9_-]{8,}/g,
  /Bearer\s+[A-Za-z0-9._~+/=-]{8,}/gi,
  /eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}/g,
];

/**
 * All of SECRET_PATTERNS in one non-global regex, case-insensitive (a superset of what they
 * match): one scan answers "anything to scrub?" for the common text that holds nothing.
 */
const ANY_SECRET = new RegExp(SECRET_PATTERNS.map((p) => `(?:${p.source})`).join('|'), 'i');

/**
 * An id (request or correlation id) that is, or has as a separate part, a key- or token-shaped
 * string. Anchored at a part boundary so ordinary ids such as `task-20240101-42` pass.
 */
const KEY_SHAPED_ID =
  /(?:^|[^A-Za-z0-9])(?:sk-[A-Za-z0-9_-]{8,}|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})/;

export function isKeyShapedId(id: string): boolean {
  return KEY_SHAPED_ID.test(id);
}

/** Scrubs key- and token-shaped strings from free text (error messages, upstream bodies). */
export function scrubSecrets(text: string): string {
  // Most text holds nothing to scrub: one scan, no per-pattern replace passes.
  if (!ANY_SECRET.test(text)) return text;
  let out = text;
  for (const pattern of SECRET_PATTERNS) out = out.replace(pattern, '[REDACTED]');
  return out;
}

/**
 * Standard output as pino's destination. Asynchronous (the default): each write is handed to
 * libuv's thread pool, so a slow reader of stdout grows the buffer instead of stalling requests.
 * Synchronous (LOG_SYNC=true): one write(2) per line on the event loop, cheaper per line
 * (docs/performance.md, item 17), but a full stdout pipe blocks the process.
 */
export function stdoutDestination(sync: boolean): DestinationStream {
  return pino.destination({ fd: 1, sync });
}

/** LOG_LEVEL and LOG_SYNC, as AppConfig.logging holds them. */
export interface LoggerSettings {
  level: string;
  sync?: boolean;
}

/** `destination` replaces stdout (tests, the CLI's stderr); LOG_SYNC then does not apply. */
export function createLogger(
  settings: LoggerSettings,
  destination: DestinationStream = stdoutDestination(settings.sync ?? false),
): Logger {
  const logger = pino(
    {
      level: settings.level,
      base: { service: 'switchyard' },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      serializers: { err: serializeError },
      formatters: {
        level: (label) => ({ level: label }),
        log: redactLogFields,
      },
      hooks: {
        logMethod(args, method) {
          // Free-text messages may quote an upstream error that echoes a key back; an object
          // after the first is interpolated into the message (`%o`), so it is censored too.
          const scrubbed = args.map((a, i) =>
            typeof a === 'string'
              ? scrubSecrets(a)
              : i > 0 && isPlainObject(a)
                ? redactLogFields(a)
                : a,
          );
          return method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
  // A child's bindings bypass pino's formatters; censor them here. Children are made with
  // Object.create(parent), so theirs inherit this child() too.
  const pinoChild = logger.child;
  logger.child = function child(this: Logger, bindings, options) {
    return pinoChild.call(this, redactLogFields(bindings), options);
  } as Logger['child'];
  return logger;
}
