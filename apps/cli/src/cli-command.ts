import type { INestApplicationContext } from '@nestjs/common';
import type { Logger } from 'pino';
import type { AppConfig } from '@app/config';

export interface CliContext {
  config: AppConfig;
  logger: Logger;
  /** Boots the application modules (no HTTP, no background loops) for commands that need services. */
  app(): Promise<INestApplicationContext>;
  print(line: string): void;
}

export interface CliCommand {
  name: string;
  usage: string;
  description: string;
  run(ctx: CliContext, args: string[]): Promise<number>;
}

/** Reads `--name value` and `--flag` style options. */
export function parseOptions(args: string[]): {
  flags: Set<string>;
  values: Map<string, string>;
  positional: string[];
} {
  const flags = new Set<string>();
  const values = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split('=', 2);
    if (inline !== undefined) values.set(name, inline);
    else if (i + 1 < args.length && !args[i + 1].startsWith('--')) values.set(name, args[++i]);
    else flags.add(name);
  }
  return { flags, values, positional };
}
