import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { INestApplicationContext } from '@nestjs/common';
import { loadConfigOrExit } from '@app/config';
import { createLogger, PinoNestLogger } from '@app/observability';
import { AppModule } from '../../gateway/src/app.module';
import { configErrorLines } from '../../gateway/src/startup-errors';
import {
  CliArgs,
  CliContext,
  CliUsageError,
  HELP_WORDS,
  helpOf,
  parseArgs,
  usageOf,
} from './cli-command';
import { COMMANDS } from './commands';

function usage(): string {
  const lines = [
    'Usage: npm run cli -- <command> [options]',
    '       npm run cli -- <command> --help',
    '',
    'Commands:',
  ];
  for (const c of COMMANDS) lines.push(`  ${usageOf(c)}`, `      ${c.description}`);
  return lines.join('\n');
}

export async function runCli(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let [name, ...args] = argv;
  if (HELP_WORDS.has(name)) {
    // `help <command>` is `<command> --help`.
    if (args.length === 0) {
      process.stdout.write(`${usage()}\n`);
      return 0;
    }
    [name, ...args] = [args[0], '--help'];
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`${name ? `Unknown command: ${name}\n\n` : ''}${usage()}\n`);
    return name ? 2 : 0;
  }
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${helpOf(command)}\n`);
    return 0;
  }
  // Checked before the configuration is read or anything is opened: a mistyped option never runs.
  let parsed: CliArgs;
  try {
    parsed = parseArgs(command, args);
  } catch (err) {
    if (!(err instanceof CliUsageError)) throw err;
    process.stderr.write(`error: ${err.message}\n`);
    return 2;
  }
  const config = loadConfigOrExit(env);
  if (!config) return 1;
  config.backgroundTasks = false;
  // Logs go to stderr so that stdout carries only the command's output (keys, tables).
  // The CLI's own default is quieter than the gateway's; an explicit (validated) LOG_LEVEL wins.
  const level = env.LOG_LEVEL ? config.logging.level : 'warn';
  const logger = createLogger({ level }, process.stderr as never);
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
    return await command.run(ctx, parsed);
  } catch (err) {
    const e = err as Error & { code?: string };
    process.stderr.write(`${(configErrorLines(err) ?? [`error: ${e.message}`]).join('\n')}\n`);
    return 1;
  } finally {
    await app?.close();
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2)).then((code) => process.exit(code));
}
