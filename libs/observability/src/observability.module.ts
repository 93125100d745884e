import { DynamicModule, Global, Module } from '@nestjs/common';
import { PrometheusModule } from '@willsoto/nestjs-prometheus';
import type { Logger } from 'pino';
import { MetricsController } from './metrics.controller';
import { collectNodeMetricsOnce } from './metrics';
import { LOGGER } from './observability.tokens';

@Global()
@Module({})
export class ObservabilityModule {
  static forRoot(logger: Logger): DynamicModule {
    collectNodeMetricsOnce();
    return {
      module: ObservabilityModule,
      imports: [
        PrometheusModule.register({
          controller: MetricsController,
          defaultMetrics: { enabled: false },
          path: '/metrics',
        }),
      ],
      providers: [{ provide: LOGGER, useValue: logger }],
      exports: [LOGGER],
    };
  }
}
