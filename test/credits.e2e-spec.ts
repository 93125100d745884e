import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { CreditsService } from '@app/credits';
import { runCli } from '../apps/cli/src/main';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway, uniqueRedisPrefix } from './support/gateway';
import { call } from './support/api-call';
import { writeProvidersFile } from './support/mock-upstream';
import { testEnv } from './support/test-env';

const REDIS = testEnv.redisUrl !== undefined;

const providersFile = () =>
  writeProvidersFile(
    [
      'providers:',
      '  - { name: mock, kind: mock, models: [gpt-4o-mini, dall-e-3] }',
      'pricing:',
      '  - { model: gpt-4o-mini, per_request: 1, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 2 }',
      '  - { model: dall-e-3, per_image: 40, per_image_by_size: { "1792x1024": 80 } }',
      '',
    ].join('\n'),
  );

describe('credits API', () => {
  let gw: TestGateway;
  let admin: string;
  let pg: Client;
  const file = providersFile();

  beforeAll(async () => {
    gw = await startGateway({ env: { PROVIDERS_FILE: file } });
    admin = (await adminToken(gw)).token;
    pg = new Client({ connectionString: gw.databaseUrl });
    await pg.connect();
  });
  afterAll(async () => {
    await pg.end();
    await gw.close();
  });

  describe('GET /v1/credits', () => {
    it('answers balance, base_quota and billing_cycle_end for the key owner', async () => {
      const c = await newConsumer(gw, { credits: 750 });
      const res = await call(gw, 'GET', '/v1/credits', c.key);
      expect(res.status).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['balance', 'base_quota', 'billing_cycle_end']);
      expect(res.body).toMatchObject({ balance: 750, base_quota: 750 });
      // The cycle starts when the account is opened: one month from now, not null until the
      // scheduler's next round.
      const cycleEnd = Date.parse(res.body.billing_cycle_end);
      expect(cycleEnd).toBeGreaterThan(Date.now() + 27 * 86_400_000);
      expect(cycleEnd).toBeLessThan(Date.now() + 32 * 86_400_000);
    });

    it('needs an API key; a JWT is not one', async () => {
      expect((await call(gw, 'GET', '/v1/credits', undefined)).status).toBe(401);
      const jwt = await call(gw, 'GET', '/v1/credits', admin);
      expect(jwt.status).toBe(401);
      expect(jwt.body.error.code).toBe('invalid_api_key');
    });
  });

  describe('GET /v1/credits/ledger', () => {
    let c: TestConsumer;
    beforeAll(async () => {
      c = await newConsumer(gw, { credits: 100 });
      for (let i = 1; i <= 4; i++) {
        const res = await call(gw, 'POST', '/admin/credits/grant', admin, {
          user_id: c.userId,
          amount: i,
          description: `g${i}`,
        });
        expect(res.status).toBe(201);
      }
    });

    it('pages newest first with {data, next_cursor}', async () => {
      const first = await call(gw, 'GET', '/v1/credits/ledger?limit=3', c.key);
      expect(first.status).toBe(200);
      expect(first.body.data.map((e: { amount: number }) => e.amount)).toEqual([4, 3, 2]);
      expect(first.body.data[0]).toEqual({
        id: expect.any(String),
        user_id: c.userId,
        event_type: 'grant',
        amount: 4,
        balance_after: 110,
        request_id: null,
        idempotency_key: null,
        description: 'g4',
        created_at: expect.any(String),
      });
      expect(first.body.next_cursor).toEqual(expect.any(String));
      const second = await call(
        gw,
        'GET',
        `/v1/credits/ledger?limit=3&cursor=${first.body.next_cursor}`,
        c.key,
      );
      expect(second.body.data.map((e: { amount: number }) => e.amount)).toEqual([1, 100]);
      expect(second.body.next_cursor).toBeNull();
    });

    it('shows only the caller’s own rows', async () => {
      const other = await newConsumer(gw, { credits: 5 });
      const res = await call(gw, 'GET', '/v1/credits/ledger', other.key);
      expect(res.body.data).toHaveLength(1);
      expect(res.body.data[0].user_id).toBe(other.userId);
    });

    it('rejects a bad limit or cursor with 400', async () => {
      const limit = await call(gw, 'GET', '/v1/credits/ledger?limit=0', c.key);
      expect(limit.status).toBe(400);
      expect(limit.body.error.param).toBe('limit');
      const cursor = await call(gw, 'GET', '/v1/credits/ledger?cursor=%%%', c.key);
      expect(cursor.status).toBe(400);
      expect(cursor.body.error.code).toBe('invalid_cursor');
    });
  });

  describe('admin grant', () => {
    it('is idempotent with its key: one row, the retry answers 200 with replayed', async () => {
      const c = await newConsumer(gw, { credits: 0 });
      const body = {
        user_id: c.userId,
        amount: 300,
        description: 'emergency',
        idempotency_key: 'ticket-4711',
      };
      const replies = await Promise.all(
        Array.from({ length: 5 }, () => call(gw, 'POST', '/admin/credits/grant', admin, body)),
      );
      expect(replies.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 201]);
      expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
      expect(replies.find((r) => r.status === 201)!.body).toMatchObject({
        event_type: 'grant',
        amount: 300,
        balance_after: 300,
        replayed: false,
      });
      expect((await call(gw, 'GET', '/v1/credits', c.key)).body.balance).toBe(300);
      const conflict = await call(gw, 'POST', '/admin/credits/grant', admin, {
        ...body,
        amount: 301,
      });
      expect(conflict.status).toBe(409);
      expect(conflict.body.error.code).toBe('idempotency_conflict');
      const audit = await call(gw, 'GET', '/admin/audit?action=credits.grant', admin);
      expect(
        audit.body.data.filter((row: { target: string }) => row.target === c.userId),
      ).toHaveLength(1);
    });

    it('validates input: 400 with the field named, 404 for an unknown user', async () => {
      const cases: [unknown, string | null][] = [
        [{ user_id: 'nope', amount: 5 }, 'user_id'],
        [{ user_id: '00000000-0000-4000-8000-000000000000', amount: -5 }, 'amount'],
        [{ user_id: '00000000-0000-4000-8000-000000000000', amount: 1.5 }, 'amount'],
        [{ user_id: '00000000-0000-4000-8000-000000000000', amount: 5, extra: 1 }, 'extra'],
      ];
      for (const [body, param] of cases) {
        const res = await call(gw, 'POST', '/admin/credits/grant', admin, body);
        expect(res.status).toBe(400);
        expect(res.body.error.param).toBe(param);
      }
      const missing = await call(gw, 'POST', '/admin/credits/grant', admin, {
        user_id: '00000000-0000-4000-8000-000000000000',
        amount: 5,
      });
      expect(missing.status).toBe(404);
      expect(missing.body.error.code).toBe('user_not_found');
    });

    it('is for admins only', async () => {
      const c = await newConsumer(gw);
      const res = await call(gw, 'POST', '/admin/credits/grant', c.key, {
        user_id: c.userId,
        amount: 5,
      });
      expect(res.status).toBe(401);
      expect((await call(gw, 'GET', '/admin/credits/audit', undefined)).status).toBe(401);
    });
  });

  describe('admin adjust, account view', () => {
    it('adjusts down but refuses to go below zero', async () => {
      const c = await newConsumer(gw, { credits: 50 });
      const down = await call(gw, 'POST', '/admin/credits/adjust', admin, {
        user_id: c.userId,
        amount: -20,
        description: 'double grant by mistake',
      });
      expect(down.status).toBe(201);
      expect(down.body).toMatchObject({ event_type: 'admin_adjustment', balance_after: 30 });
      const tooFar = await call(gw, 'POST', '/admin/credits/adjust', admin, {
        user_id: c.userId,
        amount: -31,
        description: 'too far',
      });
      expect(tooFar.status).toBe(400);
      expect(tooFar.body.error.code).toBe('balance_would_be_negative');
      const account = await call(gw, 'GET', `/admin/credits/users/${c.userId}`, admin);
      expect(account.body).toMatchObject({ user_id: c.userId, balance: 30, base_quota: 50 });
      const ledger = await call(gw, 'GET', `/admin/credits/users/${c.userId}/ledger`, admin);
      expect(ledger.body.data).toHaveLength(2);
      expect((await call(gw, 'GET', '/admin/credits/users/not-a-uuid', admin)).status).toBe(400);
    });
  });

  describe('audit and recalculate (seed 004 "Fix Credit Discrepancies")', () => {
    it('finds a hand-corrupted balance; recalculate reports and fixes it; audit is clean again', async () => {
      const c = await newConsumer(gw, { credits: 200 });
      await pg.query(`UPDATE user_credits SET balance = 999999 WHERE user_id = $1`, [c.userId]);
      const dirty = await call(gw, 'GET', '/admin/credits/audit', admin);
      expect(dirty.status).toBe(200);
      expect(dirty.body.healthy).toBe(false);
      expect(dirty.body.balance_mismatches).toContainEqual({
        user_id: c.userId,
        balance: 999999,
        ledger_sum: 200,
      });
      const fixed = await call(gw, 'POST', '/admin/credits/recalculate', admin, {
        user_id: c.userId,
      });
      expect(fixed.status).toBe(200);
      expect(fixed.body).toEqual({
        changed: [{ user_id: c.userId, old_balance: 999999, new_balance: 200 }],
        unfixable: [],
      });
      expect((await call(gw, 'GET', '/v1/credits', c.key)).body.balance).toBe(200);
      const clean = await call(gw, 'GET', '/admin/credits/audit', admin);
      expect(clean.body).toEqual({
        balance_mismatches: [],
        negative_balances: [],
        negative_ledger_rows: [],
        duplicate_idempotency_keys: [],
        open_reservations: [],
        healthy: true,
      });
    });

    it('recalculates every user when no user_id is given', async () => {
      const a = await newConsumer(gw, { credits: 10 });
      const b = await newConsumer(gw, { credits: 20 });
      await pg.query(`UPDATE user_credits SET balance = balance + 1 WHERE user_id = ANY($1)`, [
        [a.userId, b.userId],
      ]);
      const res = await call(gw, 'POST', '/admin/credits/recalculate', admin, {});
      expect(res.body.changed).toEqual(
        expect.arrayContaining([
          { user_id: a.userId, old_balance: 11, new_balance: 10 },
          { user_id: b.userId, old_balance: 21, new_balance: 20 },
        ]),
      );
    });
  });

  describe('billing cycle reset', () => {
    it('resets a due account to its base quota once', async () => {
      const c = await newConsumer(gw, { credits: 100 });
      await call(gw, 'POST', '/admin/credits/adjust', admin, {
        user_id: c.userId,
        amount: -60,
        description: 'usage',
      });
      await pg.query(
        `UPDATE user_credits SET billing_cycle_end = now() - interval '1 minute' WHERE user_id = $1`,
        [c.userId],
      );
      const first = await call(gw, 'POST', '/admin/credits/cycle-reset', admin, {
        user_id: c.userId,
      });
      expect(first.status).toBe(200);
      expect(first.body.reset).toEqual([
        expect.objectContaining({ event_type: 'cycle_reset', amount: 60, balance_after: 100 }),
      ]);
      const again = await call(gw, 'POST', '/admin/credits/cycle-reset', admin, {
        user_id: c.userId,
      });
      expect(again.body.reset).toEqual([]);
      const account = (await call(gw, 'GET', '/v1/credits', c.key)).body;
      expect(account.balance).toBe(100);
      expect(Date.parse(account.billing_cycle_end)).toBeGreaterThan(Date.now());
    });
  });

  describe('billing cycle reset with a request in flight', () => {
    it('counts its hold as spent from the new quota, so unused quota does not roll over', async () => {
      const c = await newConsumer(gw, { credits: 100 });
      const credits = gw.gateway.app.get(CreditsService);
      const hold = await credits.reserve({ userId: c.userId, amount: 30, requestId: randomUUID() });
      await pg.query(
        `UPDATE user_credits SET billing_cycle_end = now() - interval '1 minute' WHERE user_id = $1`,
        [c.userId],
      );
      const reset = await call(gw, 'POST', '/admin/credits/cycle-reset', admin, {
        user_id: c.userId,
      });
      expect(reset.body.reset).toEqual([
        expect.objectContaining({ event_type: 'cycle_reset', amount: 0, balance_after: 70 }),
      ]);
      // The request used 12 of its 30: the 18 come back, to the new quota's 70.
      await credits.settle(hold, 12);
      expect((await call(gw, 'GET', '/v1/credits', c.key)).body.balance).toBe(88);
    });
  });

  describe('pricing admin', () => {
    it('lists the prices loaded from PROVIDERS_FILE', async () => {
      const res = await call(gw, 'GET', '/admin/pricing', admin);
      expect(res.status).toBe(200);
      expect(res.body.next_cursor).toBeNull();
      expect(res.body.data).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            model: 'gpt-4o-mini',
            per_request: 1,
            per_1k_prompt_tokens: 1,
            per_1k_completion_tokens: 2,
            per_image: 0,
            source: 'file',
          }),
          expect.objectContaining({
            model: 'dall-e-3',
            per_image: 40,
            per_image_by_size: { '1792x1024': 80 },
          }),
        ]),
      );
    });

    it('edits and deletes a price, validating input', async () => {
      const put = await call(gw, 'PUT', '/admin/pricing/custom-model', admin, {
        per_request: 2.5,
        per_1k_completion_tokens: 4,
      });
      expect(put.status).toBe(200);
      expect(put.body).toMatchObject({
        model: 'custom-model',
        per_request: 2.5,
        per_1k_prompt_tokens: 0,
        per_1k_completion_tokens: 4,
        source: 'admin',
      });
      const bad = await call(gw, 'PUT', '/admin/pricing/custom-model', admin, {
        per_request: -1,
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.param).toBe('per_request');
      expect((await call(gw, 'DELETE', '/admin/pricing/custom-model', admin)).status).toBe(204);
      expect((await call(gw, 'DELETE', '/admin/pricing/custom-model', admin)).status).toBe(404);
    });
  });

  describe('CLI credits:grant', () => {
    it('grants by username, once per idempotency key', async () => {
      const c = await newConsumer(gw, { credits: 0 });
      const out: string[] = [];
      const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
        out.push(String(chunk));
        return true;
      });
      const env = {
        DATABASE_URL: gw.databaseUrl,
        PROVIDERS_FILE: file,
        LOG_LEVEL: 'silent',
        NODE_ENV: 'test',
      };
      const args = [
        'credits:grant',
        '--user',
        c.username,
        '--amount',
        '75',
        '--description',
        'support ticket',
        '--idempotency-key',
        'cli-1',
      ];
      try {
        expect(await runCli(args, env)).toBe(0);
        expect(await runCli(args, env)).toBe(0);
        expect(await runCli(['credits:grant', '--user', 'nobody-here', '--amount', '5'], env)).toBe(
          1,
        );
        expect(await runCli(['credits:grant', '--user', c.userId, '--amount', 'x'], env)).toBe(2);
      } finally {
        spy.mockRestore();
      }
      const printed = out.filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
      expect(printed[0]).toMatchObject({ amount: 75, balance_after: 75, replayed: false });
      expect(printed[1]).toMatchObject({ id: printed[0].id, replayed: true });
      expect((await call(gw, 'GET', '/v1/credits', c.key)).body.balance).toBe(75);
    });
  });
});

(REDIS ? describe : describe.skip)('pricing across two replicas', () => {
  let a: TestGateway;
  let b: TestGateway;
  beforeAll(async () => {
    const file = providersFile();
    const prefix = uniqueRedisPrefix();
    a = await startGateway({ env: { PROVIDERS_FILE: file, REDIS_KEY_PREFIX: prefix } });
    b = await startGateway({
      databaseUrl: a.databaseUrl,
      env: { PROVIDERS_FILE: file, REDIS_KEY_PREFIX: prefix },
    });
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  it('an admin edit on one replica changes the price the other one charges', async () => {
    const { PricingService } = await import('@app/credits');
    const token = (await adminToken(a)).token;
    expect(b.gateway.app.get(PricingService).priceOf('gpt-4o-mini', {})).toBe(1);
    const put = await call(a, 'PUT', '/admin/pricing/gpt-4o-mini', token, { per_request: 7 });
    expect(put.status).toBe(200);
    const deadline = Date.now() + 5000;
    while (b.gateway.app.get(PricingService).priceOf('gpt-4o-mini', {}) !== 7) {
      if (Date.now() > deadline) throw new Error('replica b never saw the new price');
      await new Promise((r) => setTimeout(r, 50));
    }
  });
});
