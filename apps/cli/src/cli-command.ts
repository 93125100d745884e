import type { INestApplicationContext } from '@nestjs/common';
import type { Logger } from 'pino';
import type { AppConfig } from '@app/config';

/** First words that ask for the list of commands (`help <command>`: that command's options). */
export const HELP_WORDS: ReadonlySet<string> = new Set(['--help', '-h', 'help']);

export interface CliContext {
  config: AppConfig;
  logger: Logger;
  /** Boots the application modules (no HTTP, no background loops) for commands that need services. */
  app(): Promise<INestApplicationContext>;
  print(line: string): void;
}

export interface CliOption {
  /** Without the leading `--`. */
  name: string;
  /** Placeholder of its value (`<n>`); absent for a switch such as `--dry`, which takes none. */
  value?: string;
  required?: boolean;
  description: string;
}

export interface CliCommand {
  name: string;
  description: string;
  /** The one positional argument the command takes (`<name>`), if any; always optional. */
  argument?: string;
  /** Every option the command takes: anything else is refused before the command runs. */
  options: readonly CliOption[];
  run(ctx: CliContext, args: CliArgs): Promise<number>;
}

export interface CliArgs {
  /** Switches that were given (`dry` for `--dry`). */
  flags: ReadonlySet<string>;
  /** Options with a value, by name (`user` → `alice` for `--user alice`). */
  values: ReadonlyMap<string, string>;
  argument?: string;
}

/** A command line that does not fit the command's declaration; nothing has run. */
export class CliUsageError extends Error {}

/** `keys:create --user <username> [--name <name>] …`, built from the declaration. */
export function usageOf(command: CliCommand): string {
  const parts = [command.name];
  if (command.argument) parts.push(`[${command.argument}]`);
  for (const o of command.options) {
    const text = o.value ? `--${o.name} ${o.value}` : `--${o.name}`;
    parts.push(o.required ? text : `[${text}]`);
  }
  return parts.join(' ');
}

/** What `<command> --help` prints: usage, description, then each option. */
export function helpOf(command: CliCommand): string {
  const lines = [`Usage: npm run cli -- ${usageOf(command)}`, '', command.description];
  if (command.options.length > 0) lines.push('', 'Options:');
  for (const o of command.options) {
    const text = o.value ? `--${o.name} ${o.value}` : `--${o.name}`;
    lines.push(`  ${text.padEnd(28)} ${o.description}${o.required ? ' (required)' : ''}`);
  }
  return lines.join('\n');
}

/**
 * Reads `--name value`, `--name=value` and `--switch` against the command's declared options.
 * An unknown option, a value missing or given to a switch, a repeated option, an extra argument
 * or a missing required option is a CliUsageError: silently ignoring one let `migrate --dry-run`
 * apply migrations and `credits:grant --idempotency_key` grant twice.
 */
export function parseArgs(command: CliCommand, args: readonly string[]): CliArgs {
  function refuse(problem: string): never {
    throw new CliUsageError(`${command.name}: ${problem}; usage: ${usageOf(command)}`);
  }
  const flags = new Set<string>();
  const values = new Map<string, string>();
  let argument: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith('-') || arg === '-') {
      if (!command.argument) refuse(`unexpected argument "${arg}"`);
      if (argument !== undefined) refuse(`unexpected second argument "${arg}"`);
      argument = arg;
      continue;
    }
    const [name, inline] = arg.startsWith('--') ? splitOnce(arg.slice(2)) : [arg, undefined];
    const option = command.options.find((o) => o.name === name);
    if (!option) {
      const given = arg.startsWith('--') ? `--${name}` : arg;
      refuse(`unknown option ${given}${command.options.length === 0 ? ' (it takes none)' : ''}`);
    }
    const { value } = option;
    if (flags.has(name) || values.has(name)) refuse(`--${name} is given twice`);
    if (!value) {
      if (inline !== undefined) refuse(`--${name} takes no value`);
      flags.add(name);
      continue;
    }
    // A value never starts with `--`: `--user --create-user` lacks the user, it is not named so.
    const next = inline ?? (args[i + 1]?.startsWith('--') ? undefined : args[++i]);
    if (next === undefined || next === '') refuse(`--${name} needs a value ${value}`);
    values.set(name, next);
  }
  const missing = command.options.find((o) => o.required && !values.has(o.name));
  if (missing) refuse(`--${missing.name} ${missing.value} is required`);
  return { flags, values, argument };
}

function splitOnce(text: string): [string, string | undefined] {
  const at = text.indexOf('=');
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}
