import pino, { Logger } from 'pino';
import { isKeyShapedId, scrubSecrets } from './logger';
import type { RequestAnnotations } from './request-annotations';

/** The fields of the per-request "request completed" line, before the annotations. */
export interface AccessLogEntry {
  requestId: string;
  method: string;
  route: string;
  status: number;
  latencyMs: number;
  annotations: RequestAnnotations;
}

export const ACCESS_LOG_MESSAGE = 'request completed';

type Kind = 'string' | 'number' | 'boolean';

/**
 * The only annotation keys that reach the access line, each with the one primitive type it
 * may have. Anything else a module puts on the request (another key, an object, a value of
 * the wrong type) is left out, so nothing unexpected can ride along.
 */
const ANNOTATION_KINDS: { readonly [K in keyof Required<RequestAnnotations>]: Kind } = {
  userId: 'string',
  apiKeyId: 'string',
  model: 'string',
  provider: 'string',
  promptTokens: 'number',
  completionTokens: 'number',
  cached: 'boolean',
  credits: 'number',
  error: 'string',
};
const KIND_BY_KEY = new Map<string, Kind>(Object.entries(ANNOTATION_KINDS));

/**
 * requestIdFrom never takes a key-shaped id from a client; an id from elsewhere that is one is
 * replaced whole (scrubbing part of it would break correlation with the other lines).
 */
function safeRequestId(id: string): string {
  return isKeyShapedId(id) ? '[REDACTED]' : id;
}

/**
 * The line's fields: fixed keys first, then the allow-listed annotations with primitive values
 * of their kind, in the annotations' own order, every string scrubbed of key- and token-shaped
 * text (a model name or error code may come from a client or an upstream).
 */
function accessObject(entry: AccessLogEntry): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    request_id: safeRequestId(entry.requestId),
    method: entry.method,
    route: entry.route,
    status: entry.status,
    latency_ms: entry.latencyMs,
  };
  const record = entry.annotations as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const kind = KIND_BY_KEY.get(key);
    const value = record[key];
    if (kind === undefined || typeof value !== kind) continue;
    fields[key] = kind === 'string' ? scrubSecrets(value as string) : value;
  }
  return fields;
}

interface PinoInternals {
  stream: { write(line: string): unknown; [key: symbol]: unknown };
  levelPrefix: Record<number, string>;
  time: () => string;
  end: string;
  messageKey: string;
  /** The logger's `formatters.log` (the gateway's: redactLogFields), run on the line as pino would. */
  formatLog: (fields: Record<string, unknown>) => Record<string, unknown>;
}

/**
 * What the line needs from the logger: its destination, level label, timestamp function and
 * bindings (`base`, child bindings, censored when they were bound). Undefined when the logger
 * does something a hand-built line would skip (a stream that wants per-line metadata, a
 * streamWrite hook, a mixin, a nested key, a message prefix).
 */
function pinoInternals(logger: Logger): PinoInternals | undefined {
  const s = pino.symbols;
  const l = logger as unknown as Record<symbol, unknown>;
  const stream = l[s.streamSym] as PinoInternals['stream'] | undefined;
  const hooks = l[s.hooksSym] as { streamWrite?: unknown } | undefined;
  const formatters = l[s.formattersSym] as { log?: PinoInternals['formatLog'] } | undefined;
  if (
    !stream ||
    typeof stream.write !== 'function' ||
    stream[s.needsMetadataGsym] === true ||
    hooks?.streamWrite ||
    l[s.mixinSym] || // its fields would be missing from a hand-built line
    l[s.nestedKeySym] ||
    l[(s as unknown as Record<string, symbol>).msgPrefixSym] || // not in pino's typings
    typeof l[s.timeSym] !== 'function' ||
    typeof l[s.lsCacheSym] !== 'object' ||
    typeof l[s.chindingsSym] !== 'string' ||
    typeof l[s.endSym] !== 'string' ||
    typeof l[s.messageKeySym] !== 'string'
  )
    return undefined;
  return {
    stream,
    levelPrefix: l[s.lsCacheSym] as Record<number, string>,
    time: l[s.timeSym] as () => string,
    end: l[s.endSym] as string,
    messageKey: l[s.messageKeySym] as string,
    formatLog: (fields) => (formatters?.log ? formatters.log(fields) : fields),
  };
}

/**
 * The per-request access line, hand-built instead of going through pino's redaction and
 * serialisation (the hottest part of the response hook). It is secret-free by construction:
 * fixed keys, numbers and booleans, route and method from Fastify, annotation strings scrubbed
 * with scrubSecrets, a key-shaped request id replaced; no headers, bodies or free-form
 * objects. Same level ("info", LOG_LEVEL respected), same fields (through the logger's log
 * formatter), message, timestamp and bindings as logger.info would write, to the same
 * (asynchronous) destination stream.
 */
export function createAccessLogWriter(logger: Logger): (entry: AccessLogEntry) => void {
  const internals = pinoInternals(logger);
  if (!internals) {
    return (entry) => {
      if (logger.isLevelEnabled('info')) logger.info(accessObject(entry), ACCESS_LOG_MESSAGE);
    };
  }
  const { stream, levelPrefix, time, end, messageKey, formatLog } = internals;
  const infoLevel = logger.levels.values.info;
  const l = logger as unknown as Record<symbol, string>;
  const tail = `,${JSON.stringify(messageKey)}:${JSON.stringify(ACCESS_LOG_MESSAGE)}${end}`;
  return (entry) => {
    if (!logger.isLevelEnabled('info')) return;
    // JSON.stringify writes what pino would: escaped strings, non-finite numbers as null.
    const fields = JSON.stringify(formatLog(accessObject(entry)));
    stream.write(
      levelPrefix[infoLevel] +
        time.call(logger) +
        l[pino.symbols.chindingsSym] + // read per line: setBindings() may change them
        ',' +
        fields.slice(1, -1) +
        tail,
    );
  };
}
