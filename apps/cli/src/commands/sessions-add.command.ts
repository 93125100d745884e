import { parseAddSession, SessionsService } from '@app/sessions';
import { CliCommand, parseOptions } from '../cli-command';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Adds one upstream credential to the pool, the same as POST /admin/sessions. `--cookie -`
 * reads it from stdin so it stays out of shell history and `ps`.
 */
const USAGE =
  'sessions:add --provider <name> --cookie <text|-> [--metadata <json>] [--expires-at <iso>]';

export const sessionsAddCommand: CliCommand = {
  name: 'sessions:add',
  usage: USAGE,
  description: 'Add an upstream session (credential) to the pool, encrypted at rest',
  async run(ctx, args) {
    const { values } = parseOptions(args);
    const provider = values.get('provider');
    let cookie = values.get('cookie');
    if (!provider || cookie === undefined) {
      ctx.print(`usage: npm run cli -- ${USAGE}`);
      return 2;
    }
    if (cookie === '-') cookie = await readStdin();
    let metadata: unknown = { source: 'cli' };
    const rawMetadata = values.get('metadata');
    if (rawMetadata !== undefined) {
      try {
        metadata = JSON.parse(rawMetadata);
      } catch {
        ctx.print('error: --metadata must be a JSON object');
        return 2;
      }
    }
    const input = parseAddSession({
      cookie_text: cookie,
      provider,
      metadata,
      expires_at: values.get('expires-at'),
    });
    const app = await ctx.app();
    const session = await app.get(SessionsService).add(input, 'cli');
    ctx.print(JSON.stringify(session, null, 2));
    return 0;
  },
};
