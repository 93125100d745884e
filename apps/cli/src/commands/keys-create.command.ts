import { ALL_SCOPES, ApiKeysService, UsersService } from '@app/auth';
import type { Scope } from '@app/auth';
import { CliCommand, parseOptions } from '../cli-command';

const USAGE =
  'keys:create --user <username> [--name <name>] [--scopes chat,images,jobs] [--rpm <n>] [--rph <n>] [--expires-at <iso>] [--create-user] [--credits <n>]';

function positiveInt(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer`);
  return n;
}

/**
 * Issues an API key for a user, the same as POST /admin/keys; prints it once as JSON (stdout
 * only, so `| jq -r .key` works). `--create-user` makes the user first, with `--credits` as its
 * base quota.
 */
export const keysCreateCommand: CliCommand = {
  name: 'keys:create',
  usage: USAGE,
  description: 'Create an API key for a user (the key is printed once)',
  async run(ctx, args) {
    const { values, flags } = parseOptions(args);
    const username = values.get('user');
    if (!username) {
      ctx.print(`usage: npm run cli -- ${USAGE}`);
      return 2;
    }
    let scopes: Scope[] | undefined;
    let rpm: number | undefined;
    let rph: number | undefined;
    let expiresAt: Date | undefined;
    let credits = 0;
    try {
      const rawScopes = values.get('scopes');
      if (rawScopes !== undefined) {
        scopes = rawScopes.split(',').map((s) => s.trim()) as Scope[];
        const unknown = scopes.filter((s) => !(ALL_SCOPES as readonly string[]).includes(s));
        if (unknown.length > 0 || scopes.length === 0)
          throw new Error(`--scopes takes a comma-separated subset of ${ALL_SCOPES.join(',')}`);
      }
      rpm = positiveInt(values.get('rpm'), 'rpm');
      rph = positiveInt(values.get('rph'), 'rph');
      const rawExpiry = values.get('expires-at');
      if (rawExpiry !== undefined) {
        expiresAt = new Date(rawExpiry);
        if (Number.isNaN(expiresAt.getTime()) || expiresAt.getTime() <= Date.now())
          throw new Error('--expires-at must be an ISO date in the future');
      }
      const rawCredits = values.get('credits');
      if (rawCredits !== undefined) {
        credits = Number(rawCredits);
        if (!Number.isInteger(credits) || credits < 0)
          throw new Error('--credits must be a whole number >= 0');
      }
    } catch (err) {
      ctx.print(`error: ${(err as Error).message}`);
      return 2;
    }
    const app = await ctx.app();
    const users = app.get(UsersService);
    let user = await users.findByUsername(username);
    if (!user) {
      if (!flags.has('create-user')) {
        ctx.print(`error: no user "${username}" (add --create-user to create it)`);
        return 1;
      }
      await users.create({ username, baseQuota: credits }, 'cli');
      user = await users.findByUsername(username);
    }
    const issued = await app.get(ApiKeysService).create(
      {
        userId: user!.id,
        name: values.get('name') ?? 'cli',
        scopes,
        rateLimitPerMinute: rpm,
        rateLimitPerHour: rph,
        expiresAt,
      },
      'cli',
    );
    ctx.print(JSON.stringify(issued, null, 2));
    return 0;
  },
};
