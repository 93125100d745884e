import { Controller, Get, Inject, Res, Req } from '@nestjs/common';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, AppConfig } from '@app/config';
import { register } from 'prom-client';

/** Compares digests, so neither the content nor the length of the secret leaks through timing. */
function safeEqual(a: string, b: string): boolean {
  const digest = (v: string) => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(a), digest(b));
}

/**
 * Whether a request may read /metrics (the gateway's and the worker's): always when
 * METRICS_USER and METRICS_PASSWORD are not both set, else only with those basic credentials.
 */
export function metricsAuthorized(
  authorization: string | undefined,
  metrics: AppConfig['metrics'],
): boolean {
  const { user, password } = metrics;
  if (!user || !password) return true;
  const header = authorization ?? '';
  // The scheme is case-insensitive (RFC 9110 §11.1): some scrapers send "basic".
  const given =
    header.slice(0, 6).toLowerCase() === 'basic '
      ? Buffer.from(header.slice(6), 'base64').toString()
      : '';
  return safeEqual(given, `${user}:${password}`);
}

/** The 401 answer of an unauthorized /metrics read, with its `www-authenticate` challenge. */
export const METRICS_AUTH_REFUSAL = {
  challenge: 'Basic realm="metrics"',
  body: {
    error: {
      message: 'Metrics need basic auth',
      type: 'authentication_error',
      code: 'metrics_auth',
      param: null,
    },
  },
} as const;

/** /metrics, behind basic auth when METRICS_USER and METRICS_PASSWORD are set. */
@Controller()
export class MetricsController extends PrometheusController {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    super();
  }

  @Get()
  override async index(
    @Res({ passthrough: false }) reply: FastifyReply,
    @Req() request?: FastifyRequest,
  ): Promise<string> {
    if (!metricsAuthorized(request?.headers.authorization, this.config.metrics)) {
      void reply
        .status(401)
        .header('www-authenticate', METRICS_AUTH_REFUSAL.challenge)
        .send(METRICS_AUTH_REFUSAL.body);
      return '';
    }
    void reply.header('content-type', register.contentType).send(await register.metrics());
    return '';
  }
}
