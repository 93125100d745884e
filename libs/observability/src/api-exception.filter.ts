import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Inject } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { ApiError } from './api-error';
import { LOGGER } from './observability.tokens';

interface Envelope {
  error: {
    message: string;
    type: string;
    code: string | null;
    param: string | null;
    request_id?: string;
  };
}

const STATUS_DEFAULTS: Record<number, { type: string; code: string }> = {
  400: { type: 'invalid_request_error', code: 'invalid_request' },
  401: { type: 'authentication_error', code: 'invalid_api_key' },
  403: { type: 'permission_error', code: 'permission_denied' },
  404: { type: 'not_found_error', code: 'not_found' },
  405: { type: 'invalid_request_error', code: 'method_not_allowed' },
  409: { type: 'conflict_error', code: 'conflict' },
  413: { type: 'invalid_request_error', code: 'payload_too_large' },
  415: { type: 'invalid_request_error', code: 'unsupported_media_type' },
  429: { type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  503: { type: 'service_unavailable', code: 'service_unavailable' },
};

/** Fastify's own errors (body parsing, limits) carry a statusCode and a FST_ code. */
interface FastifyLikeError {
  statusCode?: number;
  code?: string;
  message?: string;
}

export function toEnvelope(exception: unknown): {
  status: number;
  body: Envelope;
  headers: Record<string, string>;
} {
  if (exception instanceof ApiError) {
    return {
      status: exception.status,
      headers: exception.headers,
      body: {
        error: {
          message: exception.message,
          type: exception.type,
          code: exception.code,
          param: exception.param,
        },
      },
    };
  }
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const d = STATUS_DEFAULTS[status] ?? {
      type: status >= 500 ? 'server_error' : 'invalid_request_error',
      code: 'error',
    };
    const response = exception.getResponse();
    let message = exception.message;
    if (typeof response === 'object' && response !== null && 'message' in response) {
      const m = (response as { message: unknown }).message;
      message = Array.isArray(m) ? m.join('; ') : String(m);
    }
    let code = d.code;
    if (status === 404 && message.startsWith('Cannot '))
      message = `Unknown route: ${message.slice(7)}`;
    if (status === 400 && /JSON/.test(message)) {
      message = 'Request body is not valid JSON';
      code = 'invalid_json';
    }
    if (status === 413) message = 'Request body is larger than the allowed limit';
    return { status, headers: {}, body: { error: { message, type: d.type, code, param: null } } };
  }
  const fst = exception as FastifyLikeError;
  if (typeof fst?.statusCode === 'number' && fst.statusCode >= 400 && fst.statusCode < 500) {
    const status = fst.statusCode;
    const d = STATUS_DEFAULTS[status] ?? { type: 'invalid_request_error', code: 'invalid_request' };
    let message = fst.message ?? 'Bad request';
    let code = d.code;
    if (fst.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || /JSON/.test(message)) {
      message = 'Request body is not valid JSON';
      code = 'invalid_json';
    }
    if (status === 413) message = 'Request body is larger than the allowed limit';
    if (status === 415) message = 'Unsupported Content-Type; send application/json';
    return { status, headers: {}, body: { error: { message, type: d.type, code, param: null } } };
  }
  return {
    status: 500,
    headers: {},
    body: {
      error: {
        message: 'Internal server error',
        type: 'server_error',
        code: 'internal_error',
        param: null,
      },
    },
  };
}

/** The health controller's routes (`/health`, `/health/ready`, …). */
const HEALTH_ROUTE = /^\/health(\/|$)/;

@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  constructor(@Inject(LOGGER) private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    if (host.getType() !== 'http') return;
    const reply = host.switchToHttp().getResponse<FastifyReply>();
    const request = host.switchToHttp().getRequest<FastifyRequest>();
    if (exception instanceof HttpException && HEALTH_ROUTE.test(request.routeOptions?.url ?? '')) {
      // Health endpoints answer 503 with their own report, which probes and operators read.
      // Matched on the route, not the URL: an unknown path or method under /health has no
      // route and gets the envelope like any other 404.
      void reply.status(exception.getStatus()).send(exception.getResponse());
      return;
    }
    const { status, body, headers } = toEnvelope(exception);
    if (status >= 500 && !(exception instanceof ApiError)) {
      this.logger.error(
        { err: exception, route: request.routeOptions?.url, request_id: String(request.id) },
        'unhandled error',
      );
    }
    body.error.request_id = String(request.id);
    if (reply.sent || reply.raw.headersSent) {
      // A stream already started: the status line is gone, so end the connection cleanly.
      if (!reply.raw.writableEnded) reply.raw.end();
      return;
    }
    void reply.status(status).headers(headers).send(body);
  }
}
