import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CliCommand, CliUsageError, HELP_WORDS, parseArgs, usageOf } from './cli-command';
import { COMMANDS } from './commands';

const ROOT = path.resolve(__dirname, '../../..');

const grant: CliCommand = {
  name: 'credits:grant',
  description: 'test',
  options: [
    { name: 'user', value: '<id|username>', required: true, description: 'who' },
    { name: 'amount', value: '<n>', required: true, description: 'how much' },
    { name: 'dry', description: 'a switch' },
  ],
  run: async () => 0,
};

function refusal(command: CliCommand, args: string[]): string {
  try {
    parseArgs(command, args);
  } catch (err) {
    expect(err).toBeInstanceOf(CliUsageError);
    return (err as Error).message;
  }
  throw new Error(`accepted: ${args.join(' ')}`);
}

describe('parseArgs', () => {
  it('reads values in both spellings, switches, and values that look like options', () => {
    const parsed = parseArgs(grant, ['--user=a=b', '--amount', '-5', '--dry']);
    expect([...parsed.values]).toEqual([
      ['user', 'a=b'],
      ['amount', '-5'],
    ]);
    expect([...parsed.flags]).toEqual(['dry']);
  });

  it.each([
    [
      ['--user', 'a', '--amount', '1', '--idempotency_key', 'x'],
      'unknown option --idempotency_key',
    ],
    [['--user', 'a', '--amount', '1', '-x'], 'unknown option -x'],
    [['--user', 'a', '--amount'], '--amount needs a value <n>'],
    [['--user', '--amount', '1'], '--user needs a value <id|username>'],
    [['--user=', '--amount', '1'], '--user needs a value <id|username>'],
    [['--user', 'a', '--amount', '1', '--dry=yes'], '--dry takes no value'],
    [['--user', 'a', '--user', 'b', '--amount', '1'], '--user is given twice'],
    [['--user', 'a', '--amount', '1', 'extra'], 'unexpected argument "extra"'],
    [['--user', 'a'], '--amount <n> is required'],
  ])('refuses %j: %s, with the usage on the same line', (args, problem) => {
    expect(refusal(grant, args)).toBe(
      `credits:grant: ${problem}; usage: credits:grant --user <id|username> --amount <n> [--dry]`,
    );
  });
});

/** What follows `npm run cli --` or `…/cli/src/main.js` in a command line of the docs. */
function documentedInvocations(): { where: string; args: string[] }[] {
  const files = [
    'README.md',
    ...readdirSync(path.join(ROOT, 'docs'))
      .filter((f) => f.endsWith('.md'))
      .map((f) => `docs/${f}`),
  ];
  const found: { where: string; args: string[] }[] = [];
  for (const file of files) {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    for (const match of text.matchAll(/(?:npm run cli -- |cli\/src\/main\.js )([^\n`]*)/g)) {
      // The shell words up to a pipe, redirection, comment or the next command.
      const words = match[1].split(/\s+(?:[|<>;#]|2>|&&)/)[0].trim();
      if (words.startsWith('<')) continue; // `<command>`: a placeholder
      const split = spawnSync('bash', ['-c', `printf '%s\\0' ${words}`], { encoding: 'utf8' });
      found.push({ where: `${file}: ${match[0]}`, args: split.stdout.split('\0').slice(0, -1) });
    }
  }
  return found;
}

describe('the CLI command lines in the docs', () => {
  it('name a command and options it takes', () => {
    const lines = documentedInvocations();
    expect(lines.length).toBeGreaterThan(30);
    const problems = lines.flatMap(({ where, args: [name, ...args] }) => {
      if (HELP_WORDS.has(name)) return [];
      const command = COMMANDS.find((c) => c.name === name);
      if (!command) return [`${where}: no command ${name}`];
      try {
        parseArgs(command, args);
        return [];
      } catch (err) {
        return [`${where}: ${(err as Error).message}`];
      }
    });
    expect(problems).toEqual([]);
  });

  it('and each command has a usage built from what it declares', () => {
    expect(COMMANDS.map(usageOf)).toContain('migrate [--dry]');
  });
});
