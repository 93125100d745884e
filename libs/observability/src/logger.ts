import pino, { DestinationStream, Logger } from 'pino';

/**
 * Every path where a secret can hide in a structured log line. Values at these paths are
 * replaced, so a credential never reaches a log sink even when logged by mistake.
 */
export const REDACT_PATHS = [
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
  '*.authorization',
  '*.Authorization',
  '*.cookie',
  '*.Cookie',
  '*.password',
  '*.api_key',
  '*.apiKey',
  '*.key',
  '*.token',
  '*.access_token',
  '*.cookie_text',
  '*.secret',
  '*["x-api-key"]',
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'headers.cookie',
  'headers["x-api-key"]',
];

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
  return pino(
    {
      level: settings.level,
      base: { service: 'switchyard' },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        logMethod(args, method) {
          // Free-text messages may quote an upstream error that echoes a key back.
          const scrubbed = args.map((a) => (typeof a === 'string' ? scrubSecrets(a) : a));
          return method.apply(this, scrubbed as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}
