import type { IncomingMessage, ServerResponse } from 'node:http';
import { parse as parseQueryString } from 'node:querystring';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Logger } from 'pino';
import type { AppConfig } from '@app/config';
import { ApiError, rawHttpAnswer, recordUnparsedRequest } from '@app/observability';

/**
 * Edge defences that apply to every route: slow-client timeouts, an OpenAI-style answer to
 * requests Node's HTTP parser refuses, body parsers with a JSON depth cap, security headers and
 * CORS. Kept together so docs/security.md can point at one file.
 */

/**
 * Fastify/Node server options: timeouts for slow clients (slowloris, drip-fed bodies, idle
 * sockets) and envelopes for what is refused before routing.
 */
export function serverOptions(http: AppConfig['http'], logger: Logger) {
  // Node refuses headersTimeout > requestTimeout.
  const headersTimeout = Math.min(http.headersTimeoutMs, http.requestTimeoutMs);
  return {
    connectionTimeout: http.connectionTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    requestTimeout: http.requestTimeoutMs,
    http: {
      // Checked in the onRequest hook instead, to answer with the error envelope.
      requireHostHeader: false,
      headersTimeout,
      // Node checks both timeouts on this interval (default 30 s, far too coarse for them).
      connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(headersTimeout / 2))),
    },
    clientErrorHandler: refuseUnparsed(logger),
    frameworkErrors,
    // Path parameters (ids, model names of PUT /admin/pricing/:model) up to this length.
    routerOptions: { maxParamLength: 256 },
  };
}

/** Headers every API answer carries; a route may override one (the admin console sets its CSP). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
};

function envelope(code: string, message: string, requestId: string | null = null): string {
  return JSON.stringify({
    error: { message, type: 'invalid_request_error', code, param: null, request_id: requestId },
  });
}

/**
 * Node's parser refused the request before Fastify saw it (malformed request line, bare CR in
 * a header, headers over 16 KiB, headers or body not received in time): answer in the same
 * envelope as every other error, then close the connection. Fastify's hooks never see these,
 * so the answer is counted and logged here (route "unparsed").
 */
function refuseUnparsed(logger: Logger) {
  return (err: NodeJS.ErrnoException, socket: Socket): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const response = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !response?.headersSent) {
      const [status, code, message] =
        err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request_timeout', 'The request was not received in time']
          : err.code === 'HPE_HEADER_OVERFLOW'
            ? [431, 'headers_too_large', 'The request headers are too large']
            : [400, 'malformed_request', 'The HTTP request is malformed'];
      const body = envelope(code, message);
      socket.write(rawHttpAnswer(status, body));
      recordUnparsedRequest(logger, {
        status,
        code,
        parserError: err.code ?? 'unknown',
        remoteAddr: socket.remoteAddress ?? null,
      });
    }
    socket.destroy();
  };
}

/**
 * An `Expect` other than 100-continue: Node answers it before Fastify sees the request, with a
 * bare 417 unless someone listens. The same 417, in the envelope, counted like the parser's.
 */
function refuseExpectation(logger: Logger, request: IncomingMessage, response: ServerResponse) {
  const body = envelope('expectation_failed', 'Only "Expect: 100-continue" is supported');
  response.writeHead(417, {
    ...SECURITY_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  response.end(body);
  recordUnparsedRequest(logger, {
    status: 417,
    code: 'expectation_failed',
    parserError: 'EXPECTATION_FAILED',
    remoteAddr: request.socket.remoteAddress ?? null,
  });
}

/** Fastify refused the URL before routing (bad percent-encoding, an over-long path parameter). */
function frameworkErrors(
  error: { code?: string },
  request: FastifyRequest,
  reply: FastifyReply,
): void {
  const [status, code, message] =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? [414, 'uri_too_long', 'A path parameter is too long']
      : [400, 'invalid_url', 'The URL is not valid (bad percent-encoding?)'];
  void reply
    .code(status)
    .headers(SECURITY_HEADERS)
    .header('x-request-id', request.id)
    .header('content-type', 'application/json; charset=utf-8')
    .send(envelope(code, message, String(request.id)));
}

/**
 * Deepest nesting of `[`/`{` in JSON text (strings skipped), stopping as soon as it passes
 * `max`. Run on the raw text before JSON.parse: V8 parses nesting that JSON.stringify and
 * recursive code further on cannot handle, and a 10 MiB `[[[[…` costs a second of CPU and
 * hundreds of MB of heap to parse — before authentication has even run.
 */
export function nestingExceeds(text: string, max: number): boolean {
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string: to the next quote not escaped by a backslash.
      for (i++; i < text.length; i++) {
        const d = text.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * The body parsers (Nest's own are turned off with `bodyParser: false`): JSON with the depth
 * cap and Fastify's prototype-poisoning guard, and flat url-encoded forms (POST /auth/token).
 */
function installBodyParsers(fastify: FastifyInstance, config: AppConfig): void {
  // Fastify's built-in text/plain parser handed routes a string: a JSON body sent without its
  // content type (fetch's default) was refused as "must be a JSON object". No route reads text,
  // so such a body is a 415 like any other type no parser takes.
  fastify.removeContentTypeParser('text/plain');
  const maxDepth = config.http.bodyMaxDepth;
  const parseJson = fastify.getDefaultJsonParser('error', 'error');
  fastify.addContentTypeParser(
    'application/json',
    { parseAs: 'string', bodyLimit: config.http.bodyLimitBytes },
    (request, body, done) => {
      const text = body as string;
      if (nestingExceeds(text, maxDepth)) {
        done(
          ApiError.badRequest(
            `The request body is nested deeper than ${maxDepth} levels`,
            null,
            'body_too_deep',
          ),
          undefined,
        );
        return;
      }
      parseJson(request, text, done);
    },
  );
  fastify.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: config.http.bodyLimitBytes },
    (request, body, done) => {
      // A JSON body sent as a form (curl -d without a content type) was validated field by field
      // elsewhere: 'model: is required' for a body that has a model.
      if (!FORM_ROUTES.has(request.routeOptions.url ?? '')) {
        done(
          new ApiError(
            415,
            'invalid_request_error',
            'unsupported_media_type',
            'Unsupported Content-Type; send application/json',
          ),
          undefined,
        );
        return;
      }
      done(null, { ...parseQueryString(body as string) });
    },
  );
}

/** The routes that take a url-encoded form: the OAuth2-style login. Elsewhere a form is a 415. */
const FORM_ROUTES = new Set(['/auth/token']);

const CORS_ALLOWED_HEADERS = [
  'authorization',
  'content-type',
  'x-api-key',
  'idempotency-key',
  'x-request-id',
  'x-correlation-id',
  'x-conversation-id',
  'x-cache',
  'cache-control',
];
const CORS_EXPOSED_HEADERS = [
  'x-request-id',
  'x-ratelimit-limit-requests',
  'x-ratelimit-remaining-requests',
  'x-ratelimit-reset-requests',
  'retry-after',
  'x-cache',
  'x-provider',
  'x-credits-remaining',
];

export function installHttpHardening(
  app: NestFastifyApplication,
  config: AppConfig,
  logger: Logger,
): void {
  const fastify = app.getHttpAdapter().getInstance() as FastifyInstance;
  fastify.server.on('checkExpectation', (request: IncomingMessage, response: ServerResponse) =>
    refuseExpectation(logger, request, response),
  );
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.headers(SECURITY_HEADERS);
    // HTTP/1.1 requires Host (RFC 9112 §3.2); Node's own refusal would have no envelope.
    if (request.raw.httpVersion === '1.1' && !request.headers.host) {
      done(ApiError.badRequest('The Host header is required', 'host', 'missing_host'));
      return;
    }
    // Bodies are read as they are sent: a compressed one was parsed as text and refused with a
    // misleading "size did not match Content-Length" (gzip) or taken as if uncompressed (br).
    const encoding = request.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      done(
        new ApiError(
          415,
          'invalid_request_error',
          'unsupported_media_type',
          `Content-Encoding '${encoding.slice(0, 32)}' is not supported: send the body uncompressed`,
          'content-encoding',
        ),
      );
      return;
    }
    done();
  });
  installBodyParsers(fastify, config);
  // Closed by default: without CORS_ORIGINS browsers on other origins cannot call the API
  // (no Access-Control-* headers, preflights get 404). Credentials are never allowed: the API
  // authenticates with headers, not cookies.
  const origins = config.http.corsOrigins;
  if (origins.length > 0) {
    app.enableCors({
      origin: origins.includes('*') ? '*' : origins,
      methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      allowedHeaders: CORS_ALLOWED_HEADERS,
      exposedHeaders: CORS_EXPOSED_HEADERS,
      credentials: false,
      maxAge: 600,
    });
  }
}
