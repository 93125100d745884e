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
import { installLeanAsyncResourceBind } from './lean-async-bind';
import { listenRefusal } from './startup-errors';

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
  installLeanAsyncResourceBind();
  const logger = createLogger(config.logging, logDestination);
  const adapter = new FastifyAdapter({
    bodyLimit: config.http.bodyLimitBytes,
    genReqId: (req: { headers: Record<string, string | string[] | undefined> }) =>
      requestIdFrom(req.headers),
    forceCloseConnections: 'idle',
    // A request read during the drain is served (its answer says connection: close) while every
    // module is still up; Fastify's own 503 for it had no envelope, no log line and no row.
    return503OnClosing: false,
    trustProxy: config.http.trustProxy,
    ...serverOptions(config.http, logger),
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
  installHttpHardening(app, config, logger);
  const lifecycle = app.get(LifecycleService);
  fastify.addHook('onSend', (_request, reply, _payload, done) => {
    // Keep-alive clients hang up after their in-flight answer instead of holding the drain open.
    if (lifecycle.isShuttingDown) reply.header('connection', 'close');
    done();
  });
  fastify.addHook('onResponse', (request, _reply, done) => {
    // onSend never sees a stream (the reply is hijacked), whose headers promised keep-alive,
    // perhaps before the drain began: hang up once the answer is complete, or its client holds
    // the drain open until SHUTDOWN_GRACE_MS. end() lets the answer's last bytes go out first.
    if (lifecycle.isShuttingDown) request.raw.socket?.end();
    done();
  });
  await app.init();
  await app.listen(config.http.port, config.http.host).catch((err: unknown) => {
    throw listenRefusal(err, 'PORT');
  });
  const address = fastify.server.address();
  const port = typeof address === 'object' && address ? address.port : config.http.port;
  const url = `http://127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      lifecycle.beginShutdown();
      logger.info(
        { graceMs: config.http.shutdownGraceMs, drainDelayMs: config.http.shutdownDrainDelayMs },
        'shutdown started: readiness now 503, draining in-flight requests',
      );
      if (config.http.shutdownDrainDelayMs > 0)
        await new Promise((resolve) => setTimeout(resolve, config.http.shutdownDrainDelayMs));
      let graceTimer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<'grace'>((resolve) => {
        graceTimer = setTimeout(() => resolve('grace'), config.http.shutdownGraceMs);
      });
      const drained = fastify.close().then(() => 'drained' as const);
      if ((await Promise.race([drained, graceOver])) === 'grace') {
        logger.warn('shutdown grace period over: closing the connections still open');
        fastify.server.closeAllConnections();
      }
      clearTimeout(graceTimer);
      await app.close().catch((err) => logger.warn({ err }, 'error while closing'));
      logger.info('shutdown complete');
      logger.flush?.();
    })();
    return stopping;
  };
  return { app, logger, url, shutdown };
}
