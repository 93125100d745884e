import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { ApiKeysService } from '@app/auth';
import { loadConfig } from '@app/config';
import { CreditsService } from '@app/credits';
import { createDataSource, migrationsOn, runMigrationsLocked } from '@app/database';
import { adminToken } from './support/auth-factory';
import { createTestDatabase, dropDatabase, startGateway, TestGateway } from './support/gateway';
import { call, Reply } from './support/api-call';
import { writeProvidersFile } from './support/mock-upstream';

/**
 * Balances stop at Number.MAX_SAFE_INTEGER (2^53 − 1): above it a bigint read into a JS number is
 * rounded, and the API reported balances Postgres did not hold. Every path that raises a balance
 * is refused (400 balance_limit_exceeded) or capped there, and Postgres enforces it.
 */

const MAX = Number.MAX_SAFE_INTEGER;
const MAX_TEXT = '9007199254740991';
const MIGRATION = 'BalanceLimit1732300016000';
const LIMIT_CONSTRAINTS = [
  'credit_ledger_amount_max',
  'credit_ledger_balance_after_max',
  'user_credits_balance_max',
  'user_credits_base_quota_max',
];
const CHAT_MODEL = 'gpt-4o-mini';

const providersFile = () =>
  writeProvidersFile(
    [
      'providers:',
      `  - { name: mock, kind: mock, models: [${CHAT_MODEL}] }`,
      'pricing:',
      `  - { model: ${CHAT_MODEL}, per_request: 1, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 2 }`,
      '',
    ].join('\n'),
  );

async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function limitConstraints(url: string): Promise<{ name: string; validated: boolean }[]> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ name: string; validated: boolean }>(
      `SELECT conname AS name, convalidated AS validated FROM pg_constraint
        WHERE conname = ANY ($1) ORDER BY conname`,
      [LIMIT_CONSTRAINTS],
    );
    return rows;
  });
}

describe('balance limit (2^53 - 1)', () => {
  let gw: TestGateway;
  let admin: string;

  beforeAll(async () => {
    gw = await startGateway({ env: { PROVIDERS_FILE: providersFile() } });
    admin = (await adminToken(gw)).token;
  });
  afterAll(async () => {
    await gw.close();
  });

  /** The balance as Postgres holds it, as text (no JS number in between). */
  const dbBalance = (userId: string): Promise<string> =>
    withClient(gw.databaseUrl, async (c) => {
      const { rows } = await c.query<{ balance: string }>(
        'SELECT balance::text AS balance FROM user_credits WHERE user_id = $1',
        [userId],
      );
      return rows[0].balance;
    });

  /** A user created through the API with the largest base quota it allows. */
  const newUserAtLimit = async (): Promise<string> => {
    const res = await call(gw, 'POST', '/admin/users', admin, {
      username: `max-${randomBytes(5).toString('hex')}`,
      base_quota: MAX,
    });
    expect(res.status).toBe(201);
    expect(res.body.balance).toBe(MAX);
    return res.body.id;
  };

  const expectLimitError = (res: Reply) => {
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      type: 'invalid_request_error',
      code: 'balance_limit_exceeded',
      param: 'amount',
      message: expect.stringContaining(`maximum balance (${MAX_TEXT} credits)`),
    });
  };

  it('refuses a grant or an adjustment that would take a balance over the limit', async () => {
    const userId = await newUserAtLimit();
    expectLimitError(
      await call(gw, 'POST', '/admin/credits/grant', admin, {
        user_id: userId,
        amount: 1_000_000_000_000,
      }),
    );
    expectLimitError(
      await call(gw, 'POST', '/admin/credits/adjust', admin, {
        user_id: userId,
        amount: 1,
        description: 'one more',
      }),
    );
    expect(await dbBalance(userId)).toBe(MAX_TEXT);
    const ledger = await call(gw, 'GET', `/admin/credits/users/${userId}/ledger`, admin);
    expect(ledger.body.data).toHaveLength(1);
    // A base quota alone cannot pass it either.
    const tooRich = await call(gw, 'POST', '/admin/users', admin, {
      username: `over-${randomBytes(5).toString('hex')}`,
      base_quota: MAX + 1,
    });
    expect(tooRich.status).toBe(400);
    expect(tooRich.body.error.param).toBe('base_quota');

    // Up to the limit exactly is fine, and a replayed grant is still a replay there.
    const down = await call(gw, 'POST', '/admin/credits/adjust', admin, {
      user_id: userId,
      amount: -5,
      description: 'make room',
    });
    expect(down.status).toBe(201);
    const grant = () =>
      call(gw, 'POST', '/admin/credits/grant', admin, {
        user_id: userId,
        amount: 5,
        idempotency_key: 'fill-up',
      });
    const first = await grant();
    expect(first.status).toBe(201);
    expect(first.body.balance_after).toBe(MAX);
    const replay = await grant();
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ id: first.body.id, replayed: true });
    expect(await dbBalance(userId)).toBe(MAX_TEXT);
    const account = await call(gw, 'GET', `/admin/credits/users/${userId}`, admin);
    expect(account.body.balance).toBe(MAX);
  });

  it('reports the balance Postgres holds after a chat request at the limit', async () => {
    const userId = await newUserAtLimit();
    const { key } = await gw.gateway.app
      .get(ApiKeysService)
      .create({ userId, name: 'bounds' }, 'test');
    expectLimitError(
      await call(gw, 'POST', '/admin/credits/grant', admin, {
        user_id: userId,
        amount: 1_000_000_000_000,
      }),
    );
    const chat = await call(gw, 'POST', '/v1/chat/completions', key, {
      model: CHAT_MODEL,
      messages: [{ role: 'user', content: 'hello' }],
    });
    expect(chat.status).toBe(200);
    const held = await dbBalance(userId);
    expect(BigInt(held)).toBeLessThan(BigInt(MAX_TEXT));
    expect(chat.headers.get('x-credits-remaining')).toBe(held);
    const credits = await call(gw, 'GET', '/v1/credits', key);
    expect(String(credits.body.balance)).toBe(held);
  });

  it.each(['refund', 'settle'] as const)(
    'a %s that no longer fits under the limit gives back only what fits',
    async (kind) => {
      const userId = await newUserAtLimit();
      const credits = gw.gateway.app.get(CreditsService);
      const hold = await credits.reserve({ userId, amount: 100, requestId: `bounds-${kind}` });
      expect(hold.balance).toBe(MAX - 100);
      // Meanwhile an admin fills the account up again.
      const grant = await call(gw, 'POST', '/admin/credits/grant', admin, {
        user_id: userId,
        amount: 100,
      });
      expect(grant.status).toBe(201);

      const closed =
        kind === 'refund' ? await credits.refund(hold, 'test') : await credits.settle(hold, 40);
      expect(closed).toMatchObject({ returned: 0, balance: MAX, alreadyClosed: false });
      expect(await dbBalance(userId)).toBe(MAX_TEXT);
      const audit = await call(gw, 'GET', '/admin/credits/audit', admin);
      const mismatched = audit.body.balance_mismatches.map((m: { user_id: string }) => m.user_id);
      expect(mismatched).not.toContain(userId);
      // Closed once and for all: a retry is a replay, not a second try at the full amount.
      const again =
        kind === 'refund' ? await credits.refund(hold, 'test') : await credits.settle(hold, 40);
      expect(again).toMatchObject({ returned: 0, alreadyClosed: true });
    },
  );

  it('recalculate reports a ledger sum over the limit as unfixable instead of applying it', async () => {
    const created = await call(gw, 'POST', '/admin/users', admin, {
      username: `sum-${randomBytes(5).toString('hex')}`,
    });
    const userId: string = created.body.id;
    // Two rows each within the limit whose sum is not (a ledger edited by hand).
    await withClient(gw.databaseUrl, (c) =>
      c.query(
        `INSERT INTO credit_ledger (user_id, event_type, amount, balance_after, description)
         VALUES ($1, 'grant', $2, $2, 'by hand'), ($1, 'grant', $2, $2, 'by hand')`,
        [userId, MAX_TEXT],
      ),
    );
    const res = await call(gw, 'POST', '/admin/credits/recalculate', admin, { user_id: userId });
    expect(res.status).toBe(200);
    expect(res.body.changed).toEqual([]);
    expect(res.body.unfixable).toEqual([{ user_id: userId, ledger_sum: 2 * MAX }]);
    expect(await dbBalance(userId)).toBe('0');
  });

  it('Postgres itself refuses a balance, base quota, balance_after or amount over the limit', async () => {
    const userId = await newUserAtLimit();
    const over = (BigInt(MAX_TEXT) + 1n).toString();
    const attempts: [string, string, unknown[]][] = [
      [
        'user_credits_balance_max',
        'UPDATE user_credits SET balance = $2 WHERE user_id = $1',
        [userId, over],
      ],
      [
        'user_credits_base_quota_max',
        'UPDATE user_credits SET base_quota = $2 WHERE user_id = $1',
        [userId, over],
      ],
      [
        'credit_ledger_balance_after_max',
        `INSERT INTO credit_ledger (user_id, event_type, amount, balance_after) VALUES ($1, 'grant', 1, $2)`,
        [userId, over],
      ],
      [
        'credit_ledger_amount_max',
        `INSERT INTO credit_ledger (user_id, event_type, amount, balance_after) VALUES ($1, 'grant', $2, 0)`,
        [userId, over],
      ],
    ];
    await withClient(gw.databaseUrl, async (c) => {
      for (const [constraint, sql, params] of attempts)
        await expect(c.query(sql, params)).rejects.toMatchObject({ code: '23514', constraint });
    });
  });
});

describe(`migration ${MIGRATION}`, () => {
  let url: string;

  beforeEach(async () => {
    url = await createTestDatabase();
  });
  afterEach(async () => {
    await dropDatabase(url);
  });

  it('refuses rows already over the limit, changing nothing, and applies once they are fixed', async () => {
    const dataSource = createDataSource(url, loadConfig({ NODE_ENV: 'test' }).database);
    await dataSource.initialize();
    let later: string[] = [];
    try {
      expect(await limitConstraints(url)).toEqual(
        LIMIT_CONSTRAINTS.map((name) => ({ name, validated: true })),
      );
      const runner = dataSource.createQueryRunner();
      await runner.connect();
      try {
        // Undo it and the migrations after it.
        const applied: { name: string }[] = await runner.query(
          'SELECT name FROM migrations ORDER BY id DESC',
        );
        later = applied
          .map((m) => m.name)
          .slice(
            0,
            applied.findIndex((m) => m.name === MIGRATION),
          );
        for (let undo = 0; undo <= later.length; undo++)
          await migrationsOn(dataSource, runner).undoLastMigration();
      } finally {
        await runner.release();
      }
      expect(await limitConstraints(url)).toEqual([]);

      const over = (BigInt(MAX_TEXT) + 1n).toString();
      const userId = await withClient(url, async (c) => {
        const { rows } = await c.query<{ id: string }>(
          `INSERT INTO users (username) VALUES ('too-rich') RETURNING id`,
        );
        await c.query(`INSERT INTO user_credits (user_id, balance) VALUES ($1, $2)`, [
          rows[0].id,
          over,
        ]);
        await c.query(
          `INSERT INTO credit_ledger (user_id, event_type, amount, balance_after)
           VALUES ($1, 'grant', $2, $2)`,
          [rows[0].id, over],
        );
        return rows[0].id;
      });
      // TypeORM prints the failure it rethrows; the assertions below read it from the error.
      const quiet = jest.spyOn(console, 'log').mockImplementation(() => undefined);
      const failed = runMigrationsLocked(dataSource).finally(() => quiet.mockRestore());
      await expect(failed).rejects.toThrow(
        new RegExp(`cannot cap balances at ${MAX_TEXT} credits: 1 user_credits row.*${userId}`),
      );
      await expect(failed).rejects.toThrow(/Nothing was changed/);
      expect(await limitConstraints(url)).toEqual([]);
      const applied = await withClient(url, (c) => c.query('SELECT name FROM migrations'));
      expect(applied.rows.map((r) => r.name)).not.toContain(MIGRATION);

      await withClient(url, async (c) => {
        await c.query('UPDATE user_credits SET balance = $2 WHERE user_id = $1', [
          userId,
          MAX_TEXT,
        ]);
        await c.query(
          'UPDATE credit_ledger SET amount = $2, balance_after = $2 WHERE user_id = $1',
          [userId, MAX_TEXT],
        );
      });
      expect((await runMigrationsLocked(dataSource)).map((m) => m.name)).toEqual([
        MIGRATION,
        ...later.reverse(),
      ]);
      expect(await limitConstraints(url)).toEqual(
        LIMIT_CONSTRAINTS.map((name) => ({ name, validated: true })),
      );
    } finally {
      await dataSource.destroy();
    }
  });
});
