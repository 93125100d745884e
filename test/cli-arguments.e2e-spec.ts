import { Client } from 'pg';
import { bash, ROOT } from './monitoring.helpers';
import { freePort } from './support/free-port';
import { createTestDatabase, dropDatabase } from './support/gateway';
import { testEnv, withDatabase } from './support/test-env';

/**
 * The operator CLI as operators run it: a real process (`npm run cli --` from source) against a
 * scratch database. A mistyped option used to be ignored, so `migrate --dry-run` applied
 * migrations and `credits:grant --idempotency_key` granted twice.
 */

const CLI = `node -r ${ROOT}/test/support/ts-register.js ${ROOT}/apps/cli/src/main.ts`;
const quote = (arg: string) => `'${arg.replace(/'/g, `'\\''`)}'`;

interface CliRun {
  code: number | null;
  out: string;
  err: string;
}

async function cli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const result = await bash(
    `${CLI} ${args.map(quote).join(' ')}`,
    { NODE_ENV: 'test', LOG_LEVEL: 'silent', DATABASE_URL: '', REDIS_URL: '', ...env },
    ROOT,
    120_000,
  );
  return { code: result.status, out: result.stdout, err: result.stderr };
}

async function query<T>(databaseUrl: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const db = new Client({ connectionString: databaseUrl });
  await db.connect();
  try {
    return (await db.query(sql, params)).rows as T[];
  } finally {
    await db.end();
  }
}

const count = async (databaseUrl: string, sql: string, params: unknown[] = []) =>
  Number((await query<{ n: string }>(databaseUrl, sql, params))[0].n);

/** An empty database (no migrations applied), dropped with dropDatabase. */
async function emptyDatabase(): Promise<string> {
  const name = `sy_test_cli_${Date.now().toString(36)}`;
  await query(testEnv.adminDatabaseUrl, `CREATE DATABASE ${name}`);
  return withDatabase(testEnv.adminDatabaseUrl, name);
}

describe('operator CLI: options are declared per command (real CLI process)', () => {
  let migrated = '';
  let fresh = '';
  let env: Record<string, string>;
  const ledgerRows = () =>
    count(
      migrated,
      `SELECT count(*) AS n FROM credit_ledger l JOIN users u ON u.id = l.user_id WHERE u.username = 'alice'`,
    );
  const keysOf = (username: string) =>
    count(
      migrated,
      `SELECT count(*) AS n FROM api_keys k JOIN users u ON u.id = k.user_id WHERE u.username = $1`,
      [username],
    );

  beforeAll(async () => {
    [migrated, fresh] = await Promise.all([createTestDatabase(), emptyDatabase()]);
    env = { DATABASE_URL: migrated };
    const alice = await cli(['keys:create', '--user', 'alice', '--create-user'], env);
    expect(alice).toMatchObject({ code: 0 });
  }, 120_000);
  afterAll(async () => {
    for (const url of [migrated, fresh]) await dropDatabase(url).catch(() => undefined);
  });

  it('refuses an option the command does not take before anything runs, naming it and the accepted ones', async () => {
    await query(
      migrated,
      `INSERT INTO audit_log (actor, action, created_at) VALUES ('test', 'old.row', now() - interval '400 days')`,
    );
    const migrations = await count(migrated, 'SELECT count(*) AS n FROM migrations');
    const ledger = await ledgerRows();
    const grant = ['credits:grant', '--user', 'alice', '--amount', '5', '--idempotency_key', 'X1'];
    const [dryRun, revertDryRun, retention, clearStuck, createAdmin, grant1, grant2] =
      await Promise.all([
        cli(['migrate', '--dry-run'], { DATABASE_URL: fresh }),
        cli(['migrate:revert', '--dry-run'], env),
        cli(['maintenance:retention', '--dry'], env),
        cli(['jobs:clear-stuck', '--older-than', '5'], env),
        cli(['create-admin', '--user', 'bob'], { ...env, ADMIN_PASSWORD: 'a-long-admin-password' }),
        cli(grant, env),
        cli(grant, env),
      ]);
    expect(dryRun).toEqual({
      code: 2,
      out: '',
      err: 'error: migrate: unknown option --dry-run; usage: migrate [--dry]\n',
    });
    expect(revertDryRun).toMatchObject({ code: 2, err: expect.stringContaining('--dry-run') });
    expect(retention).toMatchObject({
      code: 2,
      err: 'error: maintenance:retention: unknown option --dry (it takes none); usage: maintenance:retention\n',
    });
    expect(clearStuck).toMatchObject({
      code: 2,
      err: expect.stringMatching(/unknown option --older-than;.*\[--older-than-minutes <n>\]/),
    });
    expect(createAdmin).toMatchObject({ code: 2, err: expect.stringContaining('--user') });
    for (const refused of [grant1, grant2])
      expect(refused).toMatchObject({
        code: 2,
        err: expect.stringMatching(
          /unknown option --idempotency_key;.*\[--idempotency-key <key>\]/,
        ),
      });
    for (const run of [dryRun, revertDryRun, retention, clearStuck, createAdmin, grant1])
      expect(run.err.trimEnd().split('\n')).toHaveLength(1);

    // Nothing ran: no migration applied or reverted, nothing deleted, granted or created.
    expect(
      (await query<{ t: string | null }>(fresh, `SELECT to_regclass('public.migrations') AS t`))[0]
        .t,
    ).toBeNull();
    expect(await count(migrated, 'SELECT count(*) AS n FROM migrations')).toBe(migrations);
    expect(
      await count(migrated, `SELECT count(*) AS n FROM audit_log WHERE action = 'old.row'`),
    ).toBe(1);
    expect(await ledgerRows()).toBe(ledger);
    expect(await count(migrated, `SELECT count(*) AS n FROM users WHERE username = 'admin'`)).toBe(
      0,
    );
  }, 180_000);

  it('refuses a missing value, a value given to a switch, a repeated option and a stray argument', async () => {
    const runs = await Promise.all([
      cli(['credits:grant', '--user', 'alice', '--amount'], env),
      cli(['keys:create', '--user', '--create-user'], env),
      cli(['migrate', '--dry=yes'], env),
      cli(['credits:grant', '--user', 'alice', '--amount', '5', '--amount', '6'], env),
      cli(['migrate', 'dry'], env),
    ]);
    expect(runs.map((r) => [r.code, r.err.replace(/;.*/s, '')])).toEqual([
      [2, 'error: credits:grant: --amount needs a value <n>'],
      [2, 'error: keys:create: --user needs a value <username>'],
      [2, 'error: migrate: --dry takes no value'],
      [2, 'error: credits:grant: --amount is given twice'],
      [2, 'error: migrate: unexpected argument "dry"'],
    ]);
    expect(await ledgerRows()).toBe(1); // alice's initial grant only
  }, 180_000);

  it('keys:create refuses --credits that would not apply to the user, and issues no key', async () => {
    const before = await keysOf('alice');
    const [existing, withCreate] = await Promise.all([
      cli(['keys:create', '--user', 'alice', '--credits', '5'], env),
      cli(['keys:create', '--user', 'alice', '--create-user', '--credits', '5'], env),
    ]);
    expect(existing).toMatchObject({
      code: 2,
      out: expect.stringMatching(
        /^error: --credits applies only to a user that --create-user creates/,
      ),
    });
    expect(withCreate).toMatchObject({
      code: 2,
      out: expect.stringMatching(/^error: user "alice" exists: --credits applies only/),
    });
    expect(await keysOf('alice')).toBe(before);
    expect(await ledgerRows()).toBe(1);
  }, 180_000);

  it('answers --help, -h, help and <command> --help with the commands and their options, exit 0', async () => {
    const [long, short, word, command, helpCommand] = await Promise.all([
      cli(['--help']),
      cli(['-h']),
      cli(['help']),
      cli(['keys:create', '--help']),
      cli(['help', 'credits:grant']),
    ]);
    for (const run of [long, short, word]) {
      expect(run.code).toBe(0);
      for (const text of [
        'migrate [--dry]',
        'migrate:revert [--dry]',
        'create-admin',
        '--create-user',
        '--idempotency-key <key>',
        'jobs:clear-stuck [--older-than-minutes <n>]',
        'breaker:reset [<name>] [--list]',
        'sessions:reencrypt',
        'maintenance:retention',
      ])
        expect(run.out).toContain(text);
    }
    expect(command).toMatchObject({ code: 0, out: expect.stringContaining('--credits <n>') });
    expect(command.out).toContain("with --create-user: the new user's starting balance");
    expect(helpCommand).toMatchObject({ code: 0, out: expect.stringContaining('--amount <n>') });
  }, 180_000);

  it('still runs the documented forms', async () => {
    const grant = [
      'credits:grant',
      '--user',
      'alice',
      '--amount',
      '100',
      '--description',
      'Emergency credit grant',
      '--idempotency-key',
      'INC-1234',
    ];
    const [dry, [first, again], bob, cleared] = await Promise.all([
      cli(['migrate', '--dry'], { DATABASE_URL: fresh }),
      cli(grant, env).then(async (r) => [r, await cli(grant, env)]),
      cli(['keys:create', '--user', 'bob', '--create-user', '--credits', '1000'], env),
      cli(['jobs:clear-stuck', '--older-than-minutes', '10'], env),
    ]);
    expect(dry).toMatchObject({ code: 0, out: expect.stringContaining('Pending migrations') });
    expect([first.code, again.code]).toEqual([0, 0]);
    expect(await ledgerRows()).toBe(2); // the initial grant and one emergency grant
    expect(bob.code).toBe(0);
    expect(JSON.parse(bob.out).key).toMatch(/^sk-sy-/);
    expect(cleared).toMatchObject({ code: 0, out: expect.stringContaining('"cleared":0') });
  }, 180_000);
});

describe('operator CLI: breaker:reset --list needs the shared breaker state', () => {
  let databaseUrl = '';
  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
  });
  afterAll(() => dropDatabase(databaseUrl).catch(() => undefined));

  it('says so and exits 1 without REDIS_URL or with Redis unreachable, instead of listing closed breakers', async () => {
    const [unset, unreachable] = await Promise.all([
      cli(['breaker:reset', '--list'], { DATABASE_URL: databaseUrl }),
      cli(['breaker:reset', '--list'], {
        DATABASE_URL: databaseUrl,
        REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
      }),
    ]);
    expect(unset).toMatchObject({
      code: 1,
      out: 'error: REDIS_URL is not set, so each gateway keeps its own breaker state; read them with GET /admin/circuit-breakers on each gateway\n',
    });
    expect(unreachable).toMatchObject({
      code: 1,
      out: 'error: Redis is unreachable; the shared breaker state cannot be reached from here\n',
    });
  }, 180_000);
});

describe('operator CLI: keys:create --create-user input bounds', () => {
  let databaseUrl = '';
  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
  });
  afterAll(() => dropDatabase(databaseUrl).catch(() => undefined));

  it('checks --user, --credits, --rpm and --rph by the admin API rules, and creates nothing', async () => {
    const env = { DATABASE_URL: databaseUrl };
    const create = (...flags: string[]) =>
      cli(['keys:create', '--user', 'fresh', '--create-user', ...flags], env);
    const refusals = [
      [['--credits', '99999999999999999999'], /^error: --credits: Too big/],
      [['--credits', '1e3'], /^error: --credits must be a whole number/],
      [['--rpm', '99999999999'], /^error: --rpm: Too big/],
      [['--rph', '0'], /^error: --rph: Too small/],
    ] as const;
    for (const [flags, message] of refusals)
      expect(await create(...flags)).toMatchObject({
        code: 2,
        out: expect.stringMatching(message),
      });
    for (const username of ['bad name!', 'x'.repeat(101)])
      expect(await cli(['keys:create', '--user', username, '--create-user'], env)).toMatchObject({
        code: 2,
        out: expect.stringMatching(/^error: --user: /),
      });
    expect(await count(databaseUrl, `SELECT count(*) AS n FROM users`)).toBe(0);
  }, 180_000);
});
