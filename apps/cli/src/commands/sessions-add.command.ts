import { parseAddSession, SessionsService } from '@app/sessions';
import { CliCommand } from '../cli-command';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Adds one upstream credential to the pool, the same as POST /admin/sessions. `--cookie -`
 * reads it from stdin so it stays out of shell history and `ps`.
 */
export const sessionsAddCommand: CliCommand = {
  name: 'sessions:add',
  description: 'Add an upstream session (credential) to the pool, encrypted at rest',
  options: [
    { name: 'provider', value: '<name>', required: true, description: 'the provider it is for' },
    {
      name: 'cookie',
      value: '<text|->',
      required: true,
      description: 'the credential; - reads it from stdin (out of shell history and ps)',
    },
    { name: 'metadata', value: '<json>', description: 'a JSON object kept with it' },
    { name: 'expires-at', value: '<iso>', description: 'when it stops being used' },
  ],
  async run(ctx, { values }) {
    const provider = values.get('provider')!;
    let cookie = values.get('cookie')!;
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
