import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { loadConfigOrExit } from '@app/config';
import { createLogger, PinoNestLogger } from '@app/observability';
import { AppModule } from '../../gateway/src/app.module';
import { CliContext } from './cli-command';
import { COMMANDS } from './commands';

function usage(): string {
  const lines = ['Usage: npm run cli -- <command> [options]', '', 'Commands:'];
  for (const c of COMMANDS) lines.push(`  ${c.usage.padEnd(52)} ${c.description}`);
  return lines.join('\n');
}

export async function runCli(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const [name, ...args] = argv;
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`${name ? `Unknown command: ${name}\n\n` : ''}${usage()}\n`);
    return name ? 2 : 0;
  }
  const config = loadConfigOrExit(env);
  if (!config) return 1;
  config.backgroundTasks = false;
  // Logs go to stderr so that stdout carries only the command's output (keys, tables).
  const logger = createLogger({ level: env.LOG_LEVEL ?? 'warn' }, process.stderr as never);
  let app: INestApplicationContext | undefined;
  const ctx: CliContext = {
    config,
    logger,
    print: (line) => process.stdout.write(`${line}\n`),
    app: async () => {
      app ??= await NestFactory.createApplicationContext(AppModule.forRoot(config, logger), {
        logger: new PinoNestLogger(logger),
        abortOnError: false,
      });
      return app;
    },
  };
  try {
    return await command.run(ctx, args);
  } catch (err) {
    const e = err as Error & { code?: string };
    process.stderr.write(`error: ${e.message}\n`);
    return 1;
  } finally {
    await app?.close();
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
