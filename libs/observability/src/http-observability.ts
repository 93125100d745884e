import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { httpRequestDuration, httpRequestsTotal } from './http-metrics';
import { runWithRequestContext } from './request-context';
import { RequestAnnotations, requestAnnotations } from './request-annotations';

export interface CompletedRequest extends RequestAnnotations {
  requestId: string;
  method: string;
  route: string;
  statusCode: number;
  latencyMs: number;
}

const REQUEST_ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
const QUIET_ROUTES = new Set([
  '/health',
  '/health/live',
  '/health/ready',
  '/health/detailed',
  '/metrics',
]);

/** Takes the caller's id when it is safe to echo back, otherwise makes one. */
export function requestIdFrom(headers: Record<string, string | string[] | undefined>): string {
  for (const name of ['x-request-id', 'x-correlation-id']) {
    const value = headers[name];
    if (typeof value === 'string' && REQUEST_ID_PATTERN.test(value)) return value;
  }
  return randomUUID();
}

/**
 * Request id, per-request log line and HTTP metrics as Fastify hooks: they run for every
 * request, including 404s and body-parser failures that never reach a Nest handler.
 */
export function installHttpObservability(
  fastify: FastifyInstance,
  logger: Logger,
  onCompleted?: (request: CompletedRequest) => void,
): void {
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    runWithRequestContext({ requestId: String(request.id) }, done);
  });

  fastify.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions?.url ?? 'unmatched';
    const status = String(reply.statusCode);
    const seconds = reply.elapsedTime / 1000;
    httpRequestsTotal.inc({ method: request.method, route, status });
    httpRequestDuration.observe({ method: request.method, route, status }, seconds);
    if (!QUIET_ROUTES.has(route)) {
      const annotations = requestAnnotations(request);
      const latencyMs = Math.round(reply.elapsedTime * 100) / 100;
      logger.info(
        {
          request_id: request.id,
          method: request.method,
          route,
          status: reply.statusCode,
          latency_ms: latencyMs,
          ...annotations,
        },
        'request completed',
      );
      if (onCompleted && route !== 'unmatched') {
        onCompleted({
          ...annotations,
          requestId: String(request.id),
          method: request.method,
          route,
          statusCode: reply.statusCode,
          latencyMs,
        });
      }
    }
    done();
  });
}
