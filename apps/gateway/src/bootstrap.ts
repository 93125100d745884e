import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, NestFastifyApplication } from '@nestjs/platform-fastify';
import type { DestinationStream, Logger } from 'pino';
import { AppConfig } from '@app/config';
import { RequestLogWriter } from '@app/database';
import { LifecycleService } from '@app/health';
import {
  createLogger,
  installHttpObservability,
  PinoNestLogger,
  requestIdFrom,
} from '@app/observability';
import { AppModule } from './app.module';
import { installHttpHardening, serverOptions } from './http-hardening';

export interface GatewayApp {
  app: NestFastifyApplication;
  logger: Logger;
  url: string;
  /** Graceful stop: readiness 503, in-flight requests finish within the grace period, pools close. */
  shutdown(): Promise<void>;
}

export async function createGateway(
  config: AppConfig,
  logDestination?: DestinationStream,
): Promise<GatewayApp> {
  const logger = createLogger(config.logging.level, logDestination);
  const adapter = new FastifyAdapter({
    bodyLimit: config.http.bodyLimitBytes,
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) =>
      requestIdFrom(req.headers),
    forceCloseConnections: 'idle',
    return503OnClosing: true,
    trustProxy: config.http.trustProxy,
    ...serverOptions(config.http),
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    AppModule.forRoot(config, logger),
    adapter,
    {
      logger: new PinoNestLogger(logger),
      bufferLogs: false,
      abortOnError: false,
      // installHttpHardening registers the body parsers (JSON with a depth cap).
      bodyParser: false,
    },
  );
  const fastify = app.getHttpAdapter().getInstance();
  const requestLogs = app.get(RequestLogWriter);
  installHttpObservability(fastify, logger, (done) => {
    // Admin and public API calls go to request_logs; health and metrics are excluded upstream.
    requestLogs.record(done);
  });
  installHttpHardening(app, config);
  await app.init();
  await app.listen(config.http.port, config.http.host);
  const address = fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const url = `http://127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      app.get(LifecycleService).beginShutdown();
      logger.info(
        { graceMs: config.http.shutdownGraceMs },
        'shutdown started: readiness now 503, draining in-flight requests',
      );
      const grace = new Promise<void>((resolve) =>
        setTimeout(resolve, config.http.shutdownGraceMs).unref(),
      );
      await Promise.race([fastify.close(), grace]);
      await app.close().catch((err) => logger.warn({ err }, 'error while closing'));
      logger.info('shutdown complete');
      logger.flush?.();
    })();
    return stopping;
  };
  return { app, logger, url, shutdown };
}
