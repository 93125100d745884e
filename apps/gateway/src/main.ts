import 'reflect-metadata';
import { constants } from 'node:os';
import { loadConfigOrExit } from '@app/config';
import { createGateway, GatewayApp } from './bootstrap';
import { configErrorLines } from './startup-errors';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  if (!config) return;
  let gateway: GatewayApp | undefined = undefined; // set once booted
  let signalled = false;
  // Installed before the boot: a signal's default action would kill the process without its
  // 'exit' event, leaving the embedded Postgres (its own session, so untouched by the signal)
  // running. SIGHUP is the terminal closing: a drain as well.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (signalled) return;
      signalled = true;
      // During the boot nothing is in flight: exit, and the exit listener stops Postgres.
      if (!gateway) process.exit(128 + constants.signals[signal]);
      gateway.logger.info({ signal }, 'signal received');
      void gateway.shutdown().then(() => process.exit(0));
    });
  }
  gateway = await createGateway(config);
  gateway.logger.info({ url: gateway.url, env: config.env }, 'Switchyard listening');
}

main().catch((err) => {
  // A setting that turned out unusable at boot: its lines, like a bad value's, without a stack.
  const lines = configErrorLines(err) ?? [
    `fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
  ];
  process.stderr.write(`${lines.join('\n')}\n`);
  process.exit(1);
});
