import 'reflect-metadata';
import { loadConfigOrExit } from '@app/config';
import { createGateway } from './bootstrap';

async function main(): Promise<void> {
  const config = loadConfigOrExit();
  if (!config) return;
  const gateway = await createGateway(config);
  gateway.logger.info({ url: gateway.url, env: config.env }, 'Switchyard listening');
  let signalled = false;
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (signalled) return;
      signalled = true;
      gateway.logger.info({ signal }, 'signal received');
      void gateway.shutdown().then(() => process.exit(0));
    });
  }
}

main().catch((err) => {
  process.stderr.write(
    `fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
