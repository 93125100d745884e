import 'reflect-metadata';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import type { DestinationStream, Logger } from 'pino';
import { register } from 'prom-client';
import { AppConfig, loadConfigOrExit } from '@app/config';
import { DatabaseService } from '@app/database';
import { LifecycleService } from '@app/health';
import {
  createLogger,
  METRICS_AUTH_REFUSAL,
  metricsAuthorized,
  PinoNestLogger,
} from '@app/observability';
import { AppModule } from './app.module';
import { configErrorLines, listenRefusal } from './startup-errors';

export interface WorkerApp {
  app: INestApplicationContext;
  logger: Logger;
  /** http://127.0.0.1:<port> of /metrics and /health/*, when WORKER_PORT is not 0. */
  url?: string;
  /** Stops fetching, lets running jobs finish within SHUTDOWN_GRACE_MS, closes pools. */
  shutdown(): Promise<void>;
}

/**
 * The job worker without the HTTP server: the same modules as the gateway (generation, credits,
 * sessions, breakers), with the queue workers always on. Scale it out for a queue backlog;
 * set JOB_WORKER_ENABLED=false on the gateways to keep generations off the API replicas.
 */
export async function createWorker(
  config: AppConfig,
  logDestination?: DestinationStream,
): Promise<WorkerApp> {
  config.jobs.workerEnabled = true;
  const logger = createLogger(config.logging, logDestination).child({ role: 'worker' });
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(config, logger), {
    logger: new PinoNestLogger(logger),
    abortOnError: false,
  });
  await app.init();
  const server =
    config.jobs.workerPort > 0 ? await listen(app, config, config.jobs.workerPort) : undefined;
  const address = server?.address() as AddressInfo | undefined;
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      logger.info('worker shutdown started: no new jobs, running jobs finishing');
      app.get(LifecycleService).beginShutdown();
      await app.close().catch((err) => logger.warn({ err }, 'error while closing'));
      server?.closeAllConnections();
      await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
      logger.info('worker shutdown complete');
      logger.flush?.();
    })();
    return stopping;
  };
  return {
    app,
    logger,
    url: address ? `http://127.0.0.1:${address.port}` : undefined,
    shutdown,
  };
}

/**
 * The worker has no API, but Prometheus must see what it does (jobs, upstream calls, credits)
 * and Kubernetes must probe it: /metrics (same basic auth as the gateway), /health/live and
 * /health/ready (database reachable, not shutting down) on WORKER_PORT.
 */
async function listen(
  app: INestApplicationContext,
  config: AppConfig,
  port: number,
): Promise<Server> {
  const database = app.get(DatabaseService);
  const lifecycle = app.get(LifecycleService);
  const json = (res: ServerResponse, status: number, body: unknown, headers = {}) => {
    res
      .writeHead(status, { ...headers, 'content-type': 'application/json' })
      .end(JSON.stringify(body));
  };
  // The gateway's error envelope, so that a probe or a scraper misconfigured against the worker
  // reads the same kind of answer as from the gateway.
  const refuse = (
    res: ServerResponse,
    status: number,
    type: string,
    code: string,
    message: string,
    headers = {},
  ) => json(res, status, { error: { message, type, code, param: null } }, headers);
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET')
      return refuse(
        res,
        405,
        'invalid_request_error',
        'method_not_allowed',
        `The worker answers only GET, not ${req.method}`,
        { allow: 'GET' },
      );
    if (path === '/health/live') return json(res, 200, { status: 'ok' });
    if (path === '/health/ready') {
      const ready = database.isReachable && !lifecycle.isShuttingDown;
      return json(res, ready ? 200 : 503, { status: ready ? 'ok' : 'unavailable' });
    }
    if (path !== '/metrics')
      return refuse(
        res,
        404,
        'not_found_error',
        'not_found',
        'The worker serves only /health/live, /health/ready and /metrics',
      );
    if (!metricsAuthorized(req.headers.authorization, config.metrics))
      return json(res, 401, METRICS_AUTH_REFUSAL.body, {
        'www-authenticate': METRICS_AUTH_REFUSAL.challenge,
      });
    void register.metrics().then(
      (text) => res.writeHead(200, { 'content-type': register.contentType }).end(text),
      () =>
        refuse(res, 500, 'server_error', 'internal_error', 'The metrics could not be collected'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(listenRefusal(err, 'WORKER_PORT')));
    server.listen(port, config.http.host, () => resolve());
  });
  return server;
}

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  if (!config) return;
  if (config.database.embedded) {
    // The embedded Postgres belongs to the gateway process; a worker shares an external one.
    process.stderr.write('config error: DATABASE_URL: required by the worker\n');
    process.exit(1);
  }
  const worker = await createWorker(config);
  worker.logger.info(
    { concurrency: config.jobs.concurrency, env: config.env, metrics: worker.url ?? 'off' },
    'Switchyard worker running',
  );
  let signalled = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (signalled) return;
      signalled = true;
      worker.logger.info({ signal }, 'signal received');
      void worker.shutdown().then(() => process.exit(0));
    });
  }
}

if (require.main === module) {
  main().catch((err) => {
    const lines = configErrorLines(err) ?? [
      `fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    ];
    process.stderr.write(`${lines.join('\n')}\n`);
    process.exit(1);
  });
}
