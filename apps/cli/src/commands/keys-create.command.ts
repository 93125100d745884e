import { z } from 'zod';
import {
  ALL_SCOPES,
  ApiKeysService,
  baseQuotaField,
  rateLimitField,
  usernameField,
  UsersService,
} from '@app/auth';
import type { Scope } from '@app/auth';
import { CliCommand } from '../cli-command';

/** A flag's value checked by the admin API's own rule for that field, in its words. */
function checked<T>(field: z.ZodType<T>, value: unknown, flag: string): T {
  const result = field.safeParse(value);
  if (!result.success) throw new Error(`--${flag}: ${result.error.issues[0].message}`);
  return result.data;
}

function number(raw: string | undefined, field: z.ZodType<number>, flag: string) {
  if (raw === undefined) return undefined;
  // Number('') is 0 and Number('1e3') 1000: only plain digits are what the operator typed.
  if (!/^\d+$/.test(raw)) throw new Error(`--${flag} must be a whole number`);
  return checked(field, Number(raw), flag);
}

/** Refused rather than ignored: the operator meant a starting balance the user would not get. */
const CREDITS_ONLY_WITH_CREATE =
  '--credits applies only to a user that --create-user creates (its starting balance); to give an existing user credits use credits:grant';

/**
 * Issues an API key for a user, the same as POST /admin/keys; prints it once as JSON (stdout
 * only, so `| jq -r .key` works). `--create-user` makes the user first, with `--credits` as its
 * base quota.
 */
export const keysCreateCommand: CliCommand = {
  name: 'keys:create',
  description: 'Create an API key for a user (the key is printed once)',
  options: [
    { name: 'user', value: '<username>', required: true, description: 'the owner of the key' },
    { name: 'name', value: '<name>', description: 'a label for the key (default "cli")' },
    {
      name: 'scopes',
      value: '<chat,images,jobs>',
      description: 'comma-separated subset (default: all)',
    },
    {
      name: 'rpm',
      value: '<n>',
      description: 'requests per minute (default RATE_LIMIT_PER_MINUTE)',
    },
    { name: 'rph', value: '<n>', description: 'requests per hour (default RATE_LIMIT_PER_HOUR)' },
    { name: 'expires-at', value: '<iso>', description: 'when the key stops working' },
    { name: 'create-user', description: 'create the user first when it does not exist' },
    {
      name: 'credits',
      value: '<n>',
      description: "with --create-user: the new user's starting balance",
    },
  ],
  async run(ctx, { values, flags }) {
    const username = values.get('user')!;
    if (values.has('credits') && !flags.has('create-user')) {
      ctx.print(`error: ${CREDITS_ONLY_WITH_CREATE}`);
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
      rpm = number(values.get('rpm'), rateLimitField, 'rpm');
      rph = number(values.get('rph'), rateLimitField, 'rph');
      const rawExpiry = values.get('expires-at');
      if (rawExpiry !== undefined) {
        expiresAt = new Date(rawExpiry);
        if (Number.isNaN(expiresAt.getTime()) || expiresAt.getTime() <= Date.now())
          throw new Error('--expires-at must be an ISO date in the future');
      }
      credits = number(values.get('credits'), baseQuotaField, 'credits') ?? 0;
      if (flags.has('create-user')) checked(usernameField, username, 'user');
    } catch (err) {
      ctx.print(`error: ${(err as Error).message}`);
      return 2;
    }
    const app = await ctx.app();
    const users = app.get(UsersService);
    let user = await users.findByUsername(username);
    if (user && values.has('credits')) {
      ctx.print(`error: user "${username}" exists: ${CREDITS_ONLY_WITH_CREATE}`);
      return 2;
    }
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
