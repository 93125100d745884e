import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import type { DestinationStream, Logger } from 'pino';
import { AppConfig, loadConfigOrExit } from '@app/config';
import { createLogger, PinoNestLogger } from '@app/observability';
import { AppModule } from './app.module';

export interface WorkerApp {
  app: INestApplicationContext;
  logger: Logger;
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
  const logger = createLogger(config.logging.level, logDestination).child({ role: 'worker' });
  const app = await NestFactory.createApplicationContext(AppModule.forRoot(config, logger), {
    logger: new PinoNestLogger(logger),
    abortOnError: false,
  });
  await app.init();
  let stopping: Promise<void> | undefined;
  const shutdown = () => {
    stopping ??= (async () => {
      logger.info('worker shutdown started: no new jobs, running jobs finishing');
      await app.close().catch((err) => logger.warn({ err }, 'error while closing'));
      logger.info('worker shutdown complete');
      logger.flush?.();
    })();
    return stopping;
  };
  return { app, logger, shutdown };
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
    { concurrency: config.jobs.concurrency, env: config.env },
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
    process.stderr.write(
      `fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
