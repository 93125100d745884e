import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { createAccessLogWriter } from './access-log';
import { httpRequestDuration, httpRequestsTotal } from './http-metrics';
import { isKeyShapedId } from './logger';
import { RequestAnnotations, requestAnnotations } from './request-annotations';

export interface CompletedRequest extends RequestAnnotations {
  requestId: string;
  method: string;
  route: string;
  statusCode: number;
  latencyMs: number;
}

/**
 * One literal with every field, not `{ ...annotations, requestId, … }`, which on Node 20 makes a
 * hidden class per call (docs/performance.md, item 16).
 */
function completedRequest(
  annotations: RequestAnnotations,
  requestId: string,
  method: string,
  route: string,
  statusCode: number,
  latencyMs: number,
): CompletedRequest {
  return {
    userId: annotations.userId,
    apiKeyId: annotations.apiKeyId,
    model: annotations.model,
    provider: annotations.provider,
    promptTokens: annotations.promptTokens,
    completionTokens: annotations.completionTokens,
    cached: annotations.cached,
    credits: annotations.credits,
    error: annotations.error,
    requestId,
    method,
    route,
    statusCode,
    latencyMs,
  };
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const QUIET_ROUTES = new Set([
  '/health',
  '/health/live',
  '/health/ready',
  '/health/detailed',
  '/metrics',
]);

/**
 * A UUIDv7 (RFC 9562) as text: the time in ms in its first 48 bits, then the version and
 * randomUUID()'s random bits. Its text sorts by creation time, so an index of such ids (request
 * ids, credit holds' ledger ids) is appended to rather than written all over
 * (docs/performance.md item 21).
 */
export function uuidV7(now = Date.now()): string {
  const ms = now.toString(16).padStart(12, '0');
  // randomUUID(): xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx; keep what follows the version digit.
  return `${ms.slice(0, 8)}-${ms.slice(8)}-7${randomUUID().slice(15)}`;
}

/**
 * Takes the caller's id when it is safe to echo back, otherwise makes one. A key-shaped id
 * (a client pasting its API key into x-request-id) is not taken: the id is on every log line.
 */
export function requestIdFrom(headers: Record<string, string | string[] | undefined>): string {
  for (const name of ['x-request-id', 'x-correlation-id']) {
    const value = headers[name];
    if (typeof value === 'string' && REQUEST_ID_PATTERN.test(value) && !isKeyShapedId(value))
      return value;
  }
  return uuidV7();
}

/**
 * Status recorded for a request whose client left before any of the answer was sent (nginx's
 * "client closed request"): the client saw nothing, so nothing else would be true.
 */
const CLIENT_CLOSED_STATUS = 499;

/**
 * A request's way to its log line when its client may leave early, kept on the raw request
 * (symbol keys: no object per request): the work that still annotates it (recordAfter), the
 * record of how it ended (set when the client left before the answer finished), and that it
 * was recorded.
 */
const PENDING = Symbol('switchyard.requestPending');
const ABANDONED = Symbol('switchyard.requestAbandoned');
const RECORDED = Symbol('switchyard.requestRecorded');
type Tracked = { [PENDING]?: Promise<unknown>; [ABANDONED]?: () => void; [RECORDED]?: true };

/** Runs `then` once `work` has settled, either way. */
function afterSettled(work: Promise<unknown>, then: () => void): void {
  work.then(then, then);
}

/**
 * Request id, per-request log line and HTTP metrics as Fastify hooks: they run for every
 * request, including 404s and body-parser failures that never reach a Nest handler.
 *
 * Fastify's onResponse runs only for an answer that finished. A client that leaves earlier (a
 * stream cut short, a long generation abandoned) gets its line, metric and row once nothing more
 * will annotate the request: after the handler's pending work (recordAfter: the credit settle
 * that annotates what it cost), or when the handler answers (onSend) if it has not yet.
 */
export function installHttpObservability(
  fastify: FastifyInstance,
  logger: Logger,
  onCompleted?: (request: CompletedRequest) => void,
): void {
  const writeAccessLine = createAccessLogWriter(logger);
  const record = (request: FastifyRequest, statusCode: number, elapsedMs: number): void => {
    const raw = request.raw as Tracked;
    if (raw[RECORDED]) return; // once, whichever of the paths below gets there first
    raw[RECORDED] = true;
    const route = request.routeOptions?.url ?? 'unmatched';
    const labels = { method: request.method, route, status: String(statusCode) };
    httpRequestsTotal.inc(labels);
    httpRequestDuration.observe(labels, elapsedMs / 1000);
    if (QUIET_ROUTES.has(route)) return;
    const annotations = requestAnnotations(request);
    const latencyMs = Math.round(elapsedMs * 100) / 100;
    const requestId = String(request.id);
    writeAccessLine({
      requestId,
      method: request.method,
      route,
      status: statusCode,
      latencyMs,
      annotations,
    });
    if (onCompleted && route !== 'unmatched') {
      onCompleted(
        completedRequest(annotations, requestId, request.method, route, statusCode, latencyMs),
      );
    }
  };

  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return; // onResponse records it
      const elapsedMs = reply.elapsedTime; // the client's wait ended now
      const status = reply.raw.headersSent ? reply.raw.statusCode : CLIENT_CLOSED_STATUS;
      const raw = request.raw as Tracked;
      const abandoned = () => record(request, status, elapsedMs);
      raw[ABANDONED] = abandoned;
      if (raw[PENDING]) afterSettled(raw[PENDING], abandoned);
      else if (reply.sent) abandoned();
      // Otherwise the handler is still at work: recordAfter or onSend records it.
    });
    done();
  });

  fastify.addHook('onSend', (request, _reply, payload, done) => {
    const raw = request.raw as Tracked;
    if (raw[ABANDONED] && !raw[PENDING]) raw[ABANDONED]();
    done(null, payload);
  });

  fastify.addHook('onResponse', (request, reply, done) => {
    record(request, reply.statusCode, reply.elapsedTime); // elapsedTime reads the clock: once
    done();
  });
}

/**
 * Has the request's log line and request_logs row wait for `work` (settled either way) when the
 * client leaves before the answer is complete: work that annotates the request after that, such
 * as a generation settling its credits. Returns `work`.
 */
export function recordAfter<T>(request: FastifyRequest, work: Promise<T>): Promise<T> {
  const raw = request.raw as Tracked;
  raw[PENDING] = work;
  const abandoned = raw[ABANDONED];
  if (abandoned) afterSettled(work, abandoned); // the client had left already
  return work;
}

/**
 * A WebSocket handshake, which Node hands to the 'upgrade' listener and Fastify never sees:
 * counted in `http_requests_total` under its path, with 101 when it became a WebSocket, else the
 * status it was refused with.
 */
export function recordUpgradeRequest(method: string, route: string, status: number): void {
  httpRequestsTotal.inc({ method, route, status: String(status) });
}

/** Route label of requests Node's HTTP parser refused: they never had a method or a route. */
export const UNPARSED_ROUTE = 'unparsed';

/** A request Node's parser refused before Fastify saw it, as the edge answered it. */
export interface UnparsedRequest {
  status: number;
  /** The error envelope's code (malformed_request, headers_too_large, request_timeout). */
  code: string;
  /** The parser's own error code (HPE_INVALID_HEADER_TOKEN, …). */
  parserError: string;
  remoteAddr: string | null;
}

/**
 * Fastify's hooks never run for these, so the edge reports them here: counted in
 * `http_requests_total` and logged with the parser's reason and the client's address, never
 * with what was sent (the raw bytes may hold credentials).
 */
export function recordUnparsedRequest(logger: Logger, refused: UnparsedRequest): void {
  httpRequestsTotal.inc({
    method: 'UNKNOWN',
    route: UNPARSED_ROUTE,
    status: String(refused.status),
  });
  logger.info(
    {
      status: refused.status,
      code: refused.code,
      parser_error: refused.parserError,
      remote_addr: refused.remoteAddr,
    },
    'request refused by the HTTP parser',
  );
}
