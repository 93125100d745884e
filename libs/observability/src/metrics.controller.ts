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
    const { user, password } = this.config.metrics;
    if (user && password) {
      const header = request?.headers.authorization ?? '';
      const decoded = header.startsWith('Basic ')
        ? Buffer.from(header.slice(6), 'base64').toString()
        : '';
      if (!safeEqual(decoded, `${user}:${password}`)) {
        void reply
          .status(401)
          .header('www-authenticate', 'Basic realm="metrics"')
          .send({
            error: {
              message: 'Metrics need basic auth',
              type: 'authentication_error',
              code: 'metrics_auth',
              param: null,
            },
          });
        return '';
      }
    }
    void reply.header('content-type', register.contentType).send(await register.metrics());
    return '';
  }
}
