import { Controller, Get, Inject, Res, Req } from '@nestjs/common';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { APP_CONFIG, AppConfig } from '@app/config';
import { register } from 'prom-client';

function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  return ab.length === bb.length && timingSafeEqual(ab, bb);
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
