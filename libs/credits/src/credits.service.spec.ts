import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { Client } from 'pg';
import pino from 'pino';
import { register } from 'prom-client';
import { AppConfig, loadConfig } from '@app/config';
import { databaseUnanswered, DatabaseService } from '@app/database';
import { ApiError, uuidV7 } from '@app/observability';
import { RedisService } from '@app/redis';
import { testEnv, withDatabase } from '../../../test/support/test-env';
import { CreditsRepository } from './credits.repository';
import { CreditsService } from './credits.service';
import { APPLY_BATCH, BatchOp, BatchResult, LedgerBatcher } from './ledger-batcher';
import { LedgerWrite, Reservation } from './credits.types';
import { PricingRepository } from './pricing.repository';
import { PricingService } from './pricing.service';

/** A fresh database cloned from the migrated template, with the credit services on top. */
async function setup() {
  const name = `sy_credits_${randomBytes(5).toString('hex')}`;
  const admin = new Client({ connectionString: testEnv.adminDatabaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${testEnv.templateDatabase}`);
  await admin.end();
  const url = withDatabase(testEnv.adminDatabaseUrl, name);
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-credits-'));
  const providersFile = path.join(dir, 'providers.yaml');
  writeFileSync(
    providersFile,
    'pricing:\n  - { model: chat-model, per_request: 1, per_1k_prompt_tokens: 1, per_1k_completion_tokens: 2 }\n',
  );
  const config: AppConfig = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: url,
    PROVIDERS_FILE: providersFile,
    DB_POOL_MAX_SIZE: '30',
  });
  config.backgroundTasks = false;
  const logger = pino({ level: 'silent' });
  const db = new DatabaseService(config, logger);
  await db.connect();
  const redis = new RedisService(config, logger);
  const pricing = new PricingService(config, logger, new PricingRepository(db), redis);
  await pricing.onModuleInit();
  const repository = new CreditsRepository(db);
  const credits = new CreditsService(
    config,
    logger,
    repository,
    pricing,
    new LedgerBatcher(db),
    redis,
  );
  const pg = new Client({ connectionString: url });
  await pg.connect();

  const newUser = async (balance = 0): Promise<string> => {
    const id = randomUUID();
    await pg.query(`INSERT INTO users (id, username) VALUES ($1, $2)`, [id, `u-${id}`]);
    if (balance > 0) await credits.grant(id, balance, 'test funds', `seed-${id}`);
    return id;
  };
  /** balance and sum(ledger) straight from SQL. */
  const books = async (userId: string) => {
    const { rows } = await pg.query(
      `SELECT (SELECT balance FROM user_credits WHERE user_id = $1) AS balance,
              (SELECT COALESCE(SUM(amount), 0) FROM credit_ledger WHERE user_id = $1) AS sum,
              (SELECT COUNT(*) FROM credit_ledger WHERE user_id = $1) AS rows`,
      [userId],
    );
    return {
      balance: Number(rows[0].balance ?? 0),
      sum: Number(rows[0].sum),
      rows: Number(rows[0].rows),
    };
  };
  const close = async () => {
    await pg.end();
    await db.onApplicationShutdown();
    await redis.onApplicationShutdown();
    const a = new Client({ connectionString: testEnv.adminDatabaseUrl });
    await a.connect();
    await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await a.end();
  };
  return { credits, pricing, repository, db, pg, newUser, books, close, config, logger, redis };
}

type Ctx = Awaited<ReturnType<typeof setup>>;

async function apiError(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected an ApiError');
}

/** A counter's value, or a histogram's `_count` / `_sum` series (by their full name). */
async function metricValue(name: string, labels: Record<string, string> = {}): Promise<number> {
  const direct = register.getSingleMetric(name);
  const series = direct ? null : name.match(/^(.*)_(count|sum)$/);
  const metric = direct ?? (series && register.getSingleMetric(series[1]));
  if (!metric) throw new Error(`no metric ${name}`);
  const data = await metric.get();
  return data.values
    .filter((v) => !series || (v as { metricName?: string }).metricName === name)
    .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
    .reduce((sum, v) => sum + v.value, 0);
}

describe('CreditsService against Postgres', () => {
  let ctx: Ctx;
  beforeAll(async () => {
    ctx = await setup();
  });
  afterAll(async () => {
    await ctx.close();
  });

  it('reserves atomically: one debit row whose balance_after is the new balance', async () => {
    const user = await ctx.newUser(100);
    const r = await ctx.credits.reserve({ userId: user, amount: 30, requestId: 'req-1' });
    expect(r).toMatchObject({ userId: user, amount: 30, requestId: 'req-1', balance: 70 });
    expect(r.id).toEqual(expect.any(String));
    expect(await ctx.books(user)).toEqual({ balance: 70, sum: 70, rows: 2 });
  });

  it('refuses a reservation the balance cannot cover with 402 and writes nothing', async () => {
    const user = await ctx.newUser(10);
    const before = await metricValue('gateway_credit_failures_total', {
      reason: 'insufficient_credits',
    });
    const err = await apiError(ctx.credits.reserve({ userId: user, amount: 11 }));
    expect(err.status).toBe(402);
    expect(err.type).toBe('insufficient_credits');
    expect(err.code).toBe('insufficient_credits');
    expect(err.message).toContain('balance is 10');
    expect(await ctx.books(user)).toEqual({ balance: 10, sum: 10, rows: 1 });
    expect(
      await metricValue('gateway_credit_failures_total', { reason: 'insufficient_credits' }),
    ).toBe(before + 1);
  });

  it('treats a user without an account as a zero balance', async () => {
    const user = await ctx.newUser(0);
    expect((await apiError(ctx.credits.reserve({ userId: user, amount: 1 }))).status).toBe(402);
    expect(await ctx.credits.balance(user)).toMatchObject({ balance: 0, baseQuota: 0 });
  });

  it('holds nothing for a free request', async () => {
    const user = await ctx.newUser(5);
    const r = await ctx.credits.reserve({ userId: user, amount: 0 });
    expect(r.id).toBeNull();
    expect(await ctx.credits.settle(r, 0)).toMatchObject({ charged: 0 });
    expect(await ctx.books(user)).toEqual({ balance: 5, sum: 5, rows: 1 });
  });

  it('lets exactly k of N concurrent reservations through when the balance covers k', async () => {
    const user = await ctx.newUser(100);
    const results = await Promise.allSettled(
      Array.from({ length: 25 }, (_, i) =>
        ctx.credits.reserve({ userId: user, amount: 10, requestId: `par-${i}` }),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const refused = results.filter(
      (r) => r.status === 'rejected' && (r.reason as ApiError).status === 402,
    );
    expect(ok).toHaveLength(10);
    expect(refused).toHaveLength(15);
    expect(await ctx.books(user)).toEqual({ balance: 0, sum: 0, rows: 11 });
  });

  it('settles to usage: refunds the unused part as one settle row and counts what was spent', async () => {
    const user = await ctx.newUser(100);
    const spentBefore = await metricValue('gateway_credits_spent_total');
    const r = await ctx.credits.reserve({ userId: user, amount: 40 });
    const closed = await ctx.credits.settle(r, 12);
    expect(closed).toEqual({ charged: 12, returned: 28, balance: 88, alreadyClosed: false });
    expect(await ctx.books(user)).toEqual({ balance: 88, sum: 88, rows: 3 });
    expect(await metricValue('gateway_credits_spent_total')).toBe(spentBefore + 12);
    const { rows } = await ctx.pg.query(
      `SELECT event_type, amount FROM credit_ledger WHERE user_id = $1 ORDER BY created_at`,
      [user],
    );
    expect(rows.map((row) => [row.event_type, Number(row.amount)])).toEqual([
      ['grant', 100],
      ['debit', -40],
      ['settle', 28],
    ]);
  });

  it('gives new ledger rows time-ordered ids (UUIDv7), in the order they were written', async () => {
    const before = Date.now();
    const user = await ctx.newUser(100); // a grant: a plain INSERT, so the column's default
    const r = await ctx.credits.reserve({ userId: user, amount: 40 }); // the batch statement
    await ctx.credits.settle(r, 12);
    await ctx.credits.grant(user, 5, 'more', `more-${user}`);
    const after = Date.now();
    const { rows } = await ctx.pg.query<{ id: string }>(
      `SELECT id::text FROM credit_ledger WHERE user_id = $1 ORDER BY created_at, id`,
      [user],
    );
    expect(rows).toHaveLength(4);
    const millis = rows.map(({ id }) => {
      // Version 7, RFC variant, and the first 48 bits are the time it was written, in ms.
      expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      return parseInt(id.replace(/-/g, '').slice(0, 12), 16);
    });
    expect(Math.min(...millis)).toBeGreaterThanOrEqual(before - 1);
    expect(Math.max(...millis)).toBeLessThanOrEqual(after + 1);
    // Within one millisecond the rest is random; across milliseconds the ids follow the writes.
    expect([...millis].sort((a, b) => a - b)).toEqual(millis);
  });

  it('prepares the batch statement once per connection and runs it from then on', async () => {
    // One connection, so every statement below is on the session pg_prepared_statements shows
    // (and connect() must migrate on the connection that holds the migrations' lock).
    const single = new DatabaseService(
      { ...ctx.config, database: { ...ctx.config.database, poolMax: 1 } },
      ctx.logger,
    );
    await single.connect();
    try {
      const credits = new CreditsService(
        ctx.config,
        ctx.logger,
        new CreditsRepository(single),
        ctx.pricing,
        new LedgerBatcher(single),
        ctx.redis,
      );
      const user = await ctx.newUser(100);
      for (const amount of [10, 20, 30]) {
        await credits.settle(await credits.reserve({ userId: user, amount }), 5);
      }
      const prepared = await single.query<{ statement: string; executions: number }>(
        `SELECT statement, (generic_plans + custom_plans)::int AS executions
           FROM pg_prepared_statements WHERE name = $1`,
        [APPLY_BATCH.name],
      );
      expect(prepared).toEqual([{ statement: APPLY_BATCH.text, executions: 6 }]);
      expect(await ctx.books(user)).toEqual({ balance: 85, sum: 85, rows: 7 });
    } finally {
      await single.onApplicationShutdown();
    }
  });

  it('finishes settles handed to the background before shutdown goes on', async () => {
    const user = await ctx.newUser(100);
    const holds = await Promise.all(
      [10, 20, 30].map((amount) => ctx.credits.reserve({ userId: user, amount })),
    );
    for (const hold of holds) ctx.credits.settleInBackground(hold, 5);
    await ctx.credits.beforeApplicationShutdown();
    expect(await ctx.books(user)).toEqual({ balance: 85, sum: 85, rows: 7 });
  });

  it('lets a settle nobody waits for ride with the next hold in one statement', async () => {
    const user = await ctx.newUser(100);
    const first = await ctx.credits.reserve({ userId: user, amount: 10 });
    const statements = await metricValue('gateway_credit_batch_size_count');
    const operations = await metricValue('gateway_credit_batch_size_sum');
    ctx.credits.settleInBackground(first, 4);
    const second = await ctx.credits.reserve({ userId: user, amount: 10 });
    expect(await metricValue('gateway_credit_batch_size_count')).toBe(statements + 1);
    expect(await metricValue('gateway_credit_batch_size_sum')).toBe(operations + 2);
    expect(second.balance).toBe(100 - 4 - 10);
    await ctx.credits.settle(second, 10);
    expect(await ctx.books(user)).toEqual({ balance: 86, sum: 86, rows: 5 });
  });

  it('charges usage beyond the hold only as far as the balance goes', async () => {
    const user = await ctx.newUser(50);
    const r = await ctx.credits.reserve({ userId: user, amount: 40 });
    expect(await ctx.credits.settle(r, 45)).toMatchObject({ charged: 45, balance: 5 });
    const r2 = await ctx.credits.reserve({ userId: user, amount: 5 });
    expect(await ctx.credits.settle(r2, 500)).toMatchObject({ charged: 5, balance: 0 });
    expect(await ctx.books(user)).toEqual({ balance: 0, sum: 0, rows: 5 });
  });

  it('refunds a reservation in full, once: settle or refund after it changes nothing', async () => {
    const user = await ctx.newUser(20);
    const r = await ctx.credits.reserve({ userId: user, amount: 15 });
    expect(await ctx.credits.refund(r, 'upstream 500')).toMatchObject({
      charged: 0,
      returned: 15,
      balance: 20,
      alreadyClosed: false,
    });
    expect(await ctx.credits.refund(r, 'again')).toMatchObject({ alreadyClosed: true });
    expect(await ctx.credits.settle(r, 3)).toMatchObject({ alreadyClosed: true, charged: 0 });
    expect(await ctx.books(user)).toEqual({ balance: 20, sum: 20, rows: 3 });
  });

  it('does not retry a close of a reservation that does not exist', async () => {
    const user = await ctx.newUser(10);
    const ghost = { id: randomUUID(), userId: user, amount: 5, requestId: null, balance: null };
    expect(await ctx.credits.settle(ghost, 1)).toBeNull();
    expect(
      (ctx.credits as unknown as { pendingCloses: Map<string, unknown> }).pendingCloses.size,
    ).toBe(0);
    expect(await ctx.books(user)).toEqual({ balance: 10, sum: 10, rows: 1 });
  });

  it('closes a reservation exactly once when settle and refund race', async () => {
    const user = await ctx.newUser(100);
    for (let round = 0; round < 5; round++) {
      const r = await ctx.credits.reserve({ userId: user, amount: 10 });
      const results = await Promise.all([
        ctx.credits.settle(r, 4),
        ctx.credits.refund(r, 'timeout'),
        ctx.credits.settle(r, 4),
      ]);
      expect(results.filter((c) => c && !c.alreadyClosed)).toHaveLength(1);
    }
    const books = await ctx.books(user);
    expect(books.balance).toBe(books.sum);
    expect(books.rows).toBe(1 + 5 * 2);
  });

  it('group-commits concurrent reserves and closes of several users, each as if alone', async () => {
    const users = [await ctx.newUser(1000), await ctx.newUser(1000), await ctx.newUser(55)];
    const batchesBefore = await metricValue('gateway_credit_batch_size_count');
    // 40 requests per user at once: reserve 10, then settle to 4 (odd ones are refunded).
    const outcomes = await Promise.allSettled(
      users.flatMap((user) =>
        Array.from({ length: 40 }, async (_, i) => {
          const r = await ctx.credits.reserve({ userId: user, amount: 10, requestId: `g-${i}` });
          return i % 2 === 0 ? ctx.credits.settle(r, 4) : ctx.credits.refund(r, 'test');
        }),
      ),
    );
    const batches = (await metricValue('gateway_credit_batch_size_count')) - batchesBefore;
    // Far fewer statements than the 240 operations (the first of a burst goes alone).
    expect(batches).toBeLessThan(120);
    const refused = outcomes.filter((o) => o.status === 'rejected');
    expect(refused.every((o) => (o.reason as ApiError).status === 402)).toBe(true);
    for (const user of users) {
      const books = await ctx.books(user);
      expect(books.balance).toBe(books.sum);
      expect(books.balance).toBeGreaterThanOrEqual(0);
      // Newest-first order within a batch is the order of writing: balance_after chains up.
      const { rows } = await ctx.pg.query<{ amount: string; balance_after: string }>(
        `SELECT amount, balance_after FROM credit_ledger WHERE user_id = $1
         ORDER BY created_at, id`,
        [user],
      );
      let running = 0;
      for (const row of rows) {
        running += Number(row.amount);
        expect(Number(row.balance_after)).toBe(running);
      }
    }
    // The poor user: at most 5 holds of 10 at any moment out of 55, never below zero.
    expect(refused.length).toBeGreaterThan(0);
    expect((await ctx.books(users[0])).balance).toBe(1000 - 20 * 4);
    const audit = await ctx.credits.audit();
    expect(audit.balance_mismatches).toEqual([]);
  });

  it("applies one account's operations of a batch in order, each against the balance before it", async () => {
    const [a, b] = [await ctx.newUser(100), await ctx.newUser(10)];
    const held = await ctx.credits.reserve({ userId: a, amount: 20 }); // balance 80
    const { rows } = await ctx.pg.query<{ o_status: string; o_balance_after: string | null }>(
      `SELECT o_status, o_balance_after FROM credits_apply_batch(
         $1::text[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[]) ORDER BY o_ord`,
      [
        ['debit', 'debit', 'settle', 'debit', 'debit'],
        [a, a, a, a, b],
        [null, null, held.id, null, null],
        [30, 60, 5, 65, 5],
        [null, null, null, null, null],
        ['d1', 'd2', 's', 'd3', 'd4'],
      ],
    );
    // 80 - 30 = 50; 60 is more than 50; the hold of 20 settles to 5: +15 = 65; 65 - 65 = 0.
    expect(rows.map((r) => [r.o_status, r.o_balance_after])).toEqual([
      ['ok', '50'],
      ['insufficient', null],
      ['ok', '65'],
      ['ok', '0'],
      ['ok', '5'],
    ]);
    expect(await ctx.books(a)).toEqual({ balance: 0, sum: 0, rows: 5 });
    expect(await ctx.books(b)).toEqual({ balance: 5, sum: 5, rows: 2 });
  });

  it('leaves to the slow path every close a batch cannot do alone, and returns the rows it wrote', async () => {
    const [a, b] = [await ctx.newUser(100), await ctx.newUser(100)];
    const heldA = await ctx.credits.reserve({ userId: a, amount: 20 }); // a: 80
    const closedA = await ctx.credits.reserve({ userId: a, amount: 10 }); // a: 70
    await ctx.credits.refund(closedA, 'test'); // a: 80
    const heldB = await ctx.credits.reserve({ userId: b, amount: 10 }); // b: 90
    const { rows } = await ctx.pg.query<{
      o_status: string;
      o_id: string | null;
      o_event_type: string | null;
      o_balance_after: string | null;
      o_idempotency_key: string | null;
      o_created_at: Date | null;
      o_reserved: string | null;
    }>(
      `SELECT * FROM credits_apply_batch(
         $1::text[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[]) ORDER BY o_ord`,
      [
        ['settle', 'settle', 'refund', 'settle', 'refund', 'debit', 'settle', 'settle'],
        [a, a, a, a, a, a, b, b],
        [heldA.id, heldA.id, closedA.id, heldB.id, randomUUID(), null, heldB.id, heldB.id],
        [15, 1, null, 1, null, 5, 11, 4],
        ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8'],
        ['s1', 's2', 'f3', 's4', 'f5', 'd6', 's7', 's8'],
      ],
    );
    // a: the hold of 20 settles to 15 (+5 = 85), then it is closed already, closedA was refunded
    // before, heldB is b's, the fifth is no debit at all; the debit takes 5 (80). b: 11 is over
    // the hold of 10, then 4 settles it (+6 = 96).
    expect(rows.map((r) => [r.o_status, r.o_event_type, r.o_balance_after, r.o_reserved])).toEqual([
      ['ok', 'settle', '85', '20'],
      ['slow', null, null, null],
      ['slow', null, null, null],
      ['slow', null, null, null],
      ['slow', null, null, null],
      ['ok', 'debit', '80', null],
      ['slow', null, null, null],
      ['ok', 'settle', '96', '10'],
    ]);
    expect(rows[0].o_idempotency_key).toBe(`close:${heldA.id}`);
    const written = rows.filter((r) => r.o_status === 'ok');
    const stored = await ctx.pg.query<{ id: string; request_id: string; created_at: Date }>(
      `SELECT id, request_id, created_at FROM credit_ledger WHERE id = ANY($1::uuid[])`,
      [written.map((r) => r.o_id)],
    );
    expect(
      stored.rows
        .sort((x, y) => x.created_at.getTime() - y.created_at.getTime())
        .map((r) => r.request_id),
    ).toEqual(['r1', 'r6', 'r8']);
    expect(await ctx.books(a)).toEqual({ balance: 80, sum: 80, rows: 6 });
    expect(await ctx.books(b)).toEqual({ balance: 96, sum: 96, rows: 3 });
  });

  it('isolates a bad operation: the rest of its batch still commits on its own', async () => {
    const user = await ctx.newUser(100);
    const results = await Promise.allSettled([
      ctx.credits.reserve({ userId: user, amount: 10 }),
      ctx.credits.reserve({ userId: user, amount: 10 }),
      // Not a uuid: Postgres refuses the whole batch statement.
      ctx.credits.reserve({ userId: 'not-a-uuid', amount: 10 }),
      ctx.credits.reserve({ userId: user, amount: 10 }),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'fulfilled',
      'rejected',
      'fulfilled',
    ]);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(ApiError);
    expect((results[2] as PromiseRejectedResult).reason.status).toBe(400);
    expect(await ctx.books(user)).toEqual({ balance: 70, sum: 70, rows: 4 });
  });

  it('makes a reservation with an idempotency key happen once', async () => {
    const user = await ctx.newUser(100);
    const [a, b] = await Promise.all([
      ctx.credits.reserve({ userId: user, amount: 30, idempotencyKey: 'k1' }),
      ctx.credits.reserve({ userId: user, amount: 30, idempotencyKey: 'k1' }),
    ]);
    expect(a.id).toBe(b.id);
    expect(await ctx.books(user)).toEqual({ balance: 70, sum: 70, rows: 2 });
  });

  it('grants idempotently: a retry returns the original, a different amount is a 409', async () => {
    const user = await ctx.newUser(0);
    const writes = await Promise.all(
      Array.from({ length: 6 }, () => ctx.credits.grant(user, 500, 'promo', 'grant-1')),
    );
    expect(writes.filter((w) => !w.replayed)).toHaveLength(1);
    expect(new Set(writes.map((w) => w.entry.id)).size).toBe(1);
    expect(await ctx.books(user)).toEqual({ balance: 500, sum: 500, rows: 1 });
    const conflict = await apiError(ctx.credits.grant(user, 501, 'promo', 'grant-1'));
    expect(conflict.status).toBe(409);
    expect(conflict.code).toBe('idempotency_conflict');
  });

  it('answers 404 for a grant to an unknown user and 400 for a bad amount', async () => {
    expect((await apiError(ctx.credits.grant(randomUUID(), 5, 'x'))).status).toBe(404);
    const user = await ctx.newUser(0);
    expect((await apiError(ctx.credits.grant(user, 0, 'x'))).status).toBe(400);
    expect((await apiError(ctx.credits.grant(user, 1.5, 'x'))).status).toBe(400);
  });

  it('adjusts down but never below zero', async () => {
    const user = await ctx.newUser(30);
    expect((await ctx.credits.adminAdjust(user, -20, 'correction')).entry).toMatchObject({
      eventType: 'admin_adjustment',
      amount: -20,
      balanceAfter: 10,
    });
    const err = await apiError(ctx.credits.adminAdjust(user, -11, 'too much'));
    expect(err).toMatchObject({ status: 400, code: 'balance_would_be_negative' });
    expect((await ctx.credits.adminAdjust(user, 5, 'back')).entry.balanceAfter).toBe(15);
    expect(await ctx.books(user)).toEqual({ balance: 15, sum: 15, rows: 3 });
  });

  it('opens an account with its base quota granted once and a billing cycle', async () => {
    const user = await ctx.newUser(0);
    await ctx.credits.openAccount(user, 250);
    await ctx.credits.openAccount(user, 250);
    const account = await ctx.credits.balance(user);
    expect(account).toMatchObject({ balance: 250, baseQuota: 250 });
    expect(account.billingCycleEnd!.getTime()).toBeGreaterThan(Date.now() + 27 * 86400_000);
    expect(await ctx.books(user)).toEqual({ balance: 250, sum: 250, rows: 1 });
  });

  it('resets a due billing cycle to the base quota once and moves the cycle forward', async () => {
    const user = await ctx.newUser(0);
    await ctx.credits.openAccount(user, 100);
    const r = await ctx.credits.reserve({ userId: user, amount: 70 });
    await ctx.credits.settle(r, 70);
    await ctx.pg.query(
      `UPDATE user_credits SET billing_cycle_end = now() - interval '40 days' WHERE user_id = $1`,
      [user],
    );
    const first = await ctx.credits.cycleReset(user);
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ eventType: 'cycle_reset', amount: 70, balanceAfter: 100 });
    expect(await ctx.credits.cycleReset(user)).toHaveLength(0);
    const account = await ctx.credits.balance(user);
    expect(account.balance).toBe(100);
    expect(account.billingCycleEnd!.getTime()).toBeGreaterThan(Date.now());
    expect(account.billingCycleEnd!.getTime()).toBeLessThan(Date.now() + 32 * 86400_000);
    expect((await ctx.books(user)).sum).toBe(100);
  });

  it('resets down to the base quota as well (unused quota does not roll over)', async () => {
    const user = await ctx.newUser(0);
    await ctx.credits.openAccount(user, 100);
    await ctx.credits.grant(user, 50, 'bonus');
    await ctx.pg.query(
      `UPDATE user_credits SET billing_cycle_end = now() - interval '1 minute' WHERE user_id = $1`,
      [user],
    );
    const [entry] = await ctx.credits.cycleReset(user);
    expect(entry).toMatchObject({ amount: -50, balanceAfter: 100 });
  });

  it('finds a hand-corrupted balance in the audit, and recalculate puts it back', async () => {
    const user = await ctx.newUser(100);
    await ctx.pg.query(`UPDATE user_credits SET balance = 12345 WHERE user_id = $1`, [user]);
    const audit = await ctx.credits.audit();
    expect(audit.healthy).toBe(false);
    expect(audit.balance_mismatches).toContainEqual({
      user_id: user,
      balance: 12345,
      ledger_sum: 100,
    });
    const result = await ctx.credits.recalculate(user);
    expect(result.changed).toEqual([{ userId: user, oldBalance: 12345, newBalance: 100 }]);
    expect(await ctx.credits.recalculate(user)).toEqual({ changed: [], unfixable: [] });
    expect((await ctx.credits.audit()).balance_mismatches).toEqual([]);
  });

  it('reports a reservation left open for over an hour, and refunds it by request id', async () => {
    const user = await ctx.newUser(100);
    const r = await ctx.credits.reserve({ userId: user, amount: 25, requestId: 'lost-req' });
    await ctx.pg.query(
      `UPDATE credit_ledger SET created_at = now() - interval '2 hours' WHERE id = $1`,
      [r.id],
    );
    const audit = await ctx.credits.audit();
    expect(audit.open_reservations).toContainEqual(
      expect.objectContaining({ reservation_id: r.id, user_id: user, amount: 25 }),
    );
    expect(await ctx.credits.refundRequest('lost-req', 'operator')).toEqual([
      { reservation_id: r.id, refunded: 25, already_closed: false },
    ]);
    expect(await ctx.credits.refundRequest('lost-req', 'operator')).toEqual([
      { reservation_id: r.id, refunded: 0, already_closed: true },
    ]);
    expect((await ctx.credits.audit()).open_reservations).toEqual([]);
    expect((await apiError(ctx.credits.refundRequest('nope', 'x'))).status).toBe(404);
    expect(await ctx.books(user)).toEqual({ balance: 100, sum: 100, rows: 3 });
  });

  it('pages the ledger newest first with a cursor', async () => {
    const user = await ctx.newUser(0);
    for (let i = 1; i <= 5; i++) await ctx.credits.grant(user, i, `g${i}`);
    const first = await ctx.credits.ledger(user, 3);
    expect(first.map((e) => e.amount)).toEqual([5, 4, 3]);
    const second = await ctx.credits.ledger(user, 3, first[2].id);
    expect(second.map((e) => e.amount)).toEqual([2, 1]);
  });

  /**
   * Random sequences of grants, reservations, settles, refunds, upstream failures and requests
   * left open, checked against a trivial model after every step: balance >= 0 and
   * balance = sum(ledger) always, and the balance is exactly what the model says.
   */
  it('keeps balance >= 0 and balance = sum(ledger) through random operation sequences', async () => {
    type Op =
      | { kind: 'grant'; amount: number }
      | { kind: 'reserve'; amount: number }
      | { kind: 'settle'; index: number; actual: number }
      | { kind: 'refund'; index: number }
      | { kind: 'adjust'; amount: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('grant' as const),
          amount: fc.integer({ min: 1, max: 200 }),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('reserve' as const),
          amount: fc.integer({ min: 0, max: 120 }),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('settle' as const),
          index: fc.nat(),
          actual: fc.integer({ min: 0, max: 250 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('refund' as const), index: fc.nat() }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('adjust' as const),
          amount: fc.integer({ min: -100, max: 100 }).filter((n) => n !== 0),
        }),
      },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40, size: 'max' }), async (ops) => {
        const user = await ctx.newUser(0);
        let expected = 0;
        const open: { reservation: Reservation; closed: boolean }[] = [];
        for (const o of ops) {
          if (o.kind === 'grant') {
            await ctx.credits.grant(user, o.amount, 'prop');
            expected += o.amount;
          } else if (o.kind === 'adjust') {
            if (expected + o.amount >= 0) {
              await ctx.credits.adminAdjust(user, o.amount, 'prop');
              expected += o.amount;
            } else {
              expect((await apiError(ctx.credits.adminAdjust(user, o.amount, 'prop'))).status).toBe(
                400,
              );
            }
          } else if (o.kind === 'reserve') {
            if (o.amount <= expected) {
              const reservation = await ctx.credits.reserve({ userId: user, amount: o.amount });
              expected -= o.amount;
              open.push({ reservation, closed: false });
            } else {
              expect(
                (await apiError(ctx.credits.reserve({ userId: user, amount: o.amount }))).status,
              ).toBe(402);
            }
          } else {
            // Mostly close a reservation still open; sometimes repeat a close (a retry).
            const pending = open.filter((slot) => !slot.closed);
            const pool = pending.length > 0 && o.index % 5 !== 0 ? pending : open;
            if (pool.length === 0) continue;
            const slot = pool[o.index % pool.length];
            const held = slot.reservation.amount;
            const result =
              o.kind === 'settle'
                ? await ctx.credits.settle(slot.reservation, o.actual)
                : await ctx.credits.refund(slot.reservation, 'upstream failure');
            if (slot.reservation.id !== null && !slot.closed) {
              if (o.kind === 'refund') expected += held;
              else if (o.actual <= held) expected += held - o.actual;
              else expected -= Math.min(expected, o.actual - held);
            }
            if (slot.reservation.id !== null) expect(result!.alreadyClosed).toBe(slot.closed);
            slot.closed = true;
          }
          const books = await ctx.books(user);
          expect(books.balance).toBeGreaterThanOrEqual(0);
          expect(books.balance).toBe(books.sum);
          expect(books.balance).toBe(expected);
        }
      }),
      { numRuns: 60 },
    );
    const audit = await ctx.credits.audit();
    expect(audit.balance_mismatches).toEqual([]);
    expect(audit.negative_balances).toEqual([]);
    expect(audit.duplicate_idempotency_keys).toEqual([]);
  });
});

/**
 * A hold whose statement was sent and never answered (a crash, a freeze, a partition at that
 * instant) may or may not have been written. These lose the reply on purpose, after or instead
 * of the real write, and check that the credits come back without an operator and are never
 * taken twice.
 */
describe('credit holds whose write is in doubt', () => {
  let ctx: Ctx;
  beforeAll(async () => {
    ctx = await setup();
  });
  afterAll(async () => {
    await ctx.close();
  });

  type Write = 'written' | 'lost';
  /** A batcher whose every reply is lost: the batch is first written, or not, as told. */
  class ReplyLosingBatcher extends LedgerBatcher {
    constructor(private readonly outcome: Write) {
      super(ctx.db);
    }
    override async apply(op: BatchOp): Promise<BatchResult> {
      if (this.outcome === 'written') await super.apply(op);
      throw databaseUnanswered();
    }
  }
  /** A repository whose debits get no reply (and are not written): the database froze. */
  class FrozenDebits extends CreditsRepository {
    override debit(): Promise<LedgerWrite | null> {
      return Promise.reject(databaseUnanswered());
    }
  }

  function creditsWith(batcher: LedgerBatcher, repository = ctx.repository): CreditsService {
    return new CreditsService(ctx.config, ctx.logger, repository, ctx.pricing, batcher, ctx.redis);
  }
  const pendingOf = (credits: CreditsService) =>
    (credits as unknown as { pendingCloses: Map<string, { inDoubt?: boolean }> }).pendingCloses;
  const retryTick = (credits: CreditsService) =>
    (credits as unknown as { retryPendingCloses(): Promise<void> }).retryPendingCloses();
  const rowsOf = async (userId: string) =>
    (
      await ctx.pg.query<{ id: string; event_type: string; amount: string; key: string | null }>(
        `SELECT id, event_type, amount, idempotency_key AS key FROM credit_ledger
          WHERE user_id = $1 ORDER BY created_at, id`,
        [userId],
      )
    ).rows.map((r) => ({ id: r.id, type: r.event_type, amount: Number(r.amount), key: r.key }));

  it('takes a hold once when its batch was written but the reply lost: the retry finds it', async () => {
    const user = await ctx.newUser(100);
    const credits = creditsWith(new ReplyLosingBatcher('written'));
    const hold = await credits.reserve({ userId: user, amount: 30, requestId: 'lost-reply' });
    expect(hold.balance).toBe(70);
    expect(pendingOf(credits).size).toBe(0);
    const rows = await rowsOf(user);
    expect(rows.map((r) => r.type)).toEqual(['grant', 'debit']);
    expect(rows[1].id).toBe(hold.id);
    await credits.settle(hold, 10);
    expect(await ctx.books(user)).toEqual({ balance: 90, sum: 90, rows: 3 });
  });

  it('refunds a hold that was written when neither attempt was answered', async () => {
    const user = await ctx.newUser(100);
    const credits = creditsWith(new ReplyLosingBatcher('written'), new FrozenDebits(ctx.db));
    const failed = await apiError(credits.reserve({ userId: user, amount: 30 }));
    expect(failed.status).toBe(503);
    expect(await ctx.books(user)).toEqual({ balance: 70, sum: 70, rows: 2 });
    const [[id, pending]] = [...pendingOf(credits)];
    expect(pending.inDoubt).toBe(true);

    await retryTick(credits);
    expect(pendingOf(credits).size).toBe(0);
    expect(await ctx.books(user)).toEqual({ balance: 100, sum: 100, rows: 3 });
    expect((await rowsOf(user)).slice(1)).toEqual([
      { id, type: 'debit', amount: -30, key: null },
      expect.objectContaining({ type: 'refund', amount: 30, key: `close:${id}` }),
    ]);
  });

  it('voids a hold that was never written, so that it can no longer be written late', async () => {
    const user = await ctx.newUser(100);
    const credits = creditsWith(new ReplyLosingBatcher('lost'), new FrozenDebits(ctx.db));
    expect((await apiError(credits.reserve({ userId: user, amount: 30 }))).status).toBe(503);
    const [[id]] = [...pendingOf(credits)];
    await retryTick(credits);
    expect(pendingOf(credits).size).toBe(0);
    expect((await rowsOf(user)).slice(1)).toEqual([{ id, type: 'void', amount: 0, key: null }]);

    // The hold arrives after all (a statement held in a frozen server): refused on both paths.
    const late = {
      kind: 'debit' as const,
      id,
      userId: user,
      amount: 30,
      requestId: null,
      description: 'late',
    };
    await expect(new LedgerBatcher(ctx.db).apply(late)).rejects.toThrow();
    await expect(ctx.repository.debit({ ...late, eventType: 'debit' })).rejects.toThrow();
    // Settling the doubt again changes nothing.
    expect(
      await ctx.repository.settleHoldInDoubt({ id, userId: user, requestId: null }, 'again'),
    ).toBe('voided');
    expect(await ctx.books(user)).toEqual({ balance: 100, sum: 100, rows: 2 });
  });

  it('refunds a hold refused for the balance after an unanswered attempt that took it', async () => {
    const user = await ctx.newUser(100);
    const credits = creditsWith(new ReplyLosingBatcher('written'));
    // The first attempt took 80; the retry with the same id finds 20 left and is refused.
    expect((await apiError(credits.reserve({ userId: user, amount: 80 }))).status).toBe(402);
    expect(await ctx.books(user)).toEqual({ balance: 20, sum: 20, rows: 2 });
    await retryTick(credits);
    expect(await ctx.books(user)).toEqual({ balance: 100, sum: 100, rows: 3 });
  });

  it('lets exactly one of a late hold and its void win when they race', async () => {
    const user = await ctx.newUser(10_000);
    const db = ctx.db;
    const batcher = new LedgerBatcher(db);
    const ids = Array.from({ length: 40 }, () => uuidV7());
    await Promise.allSettled(
      ids.flatMap((id, i) => [
        i % 2 === 0
          ? batcher.apply({
              kind: 'debit',
              id,
              userId: user,
              amount: 10,
              requestId: null,
              description: 'late',
            })
          : ctx.repository.debit({ id, userId: user, amount: 10, eventType: 'debit' }),
        ctx.repository.settleHoldInDoubt({ id, userId: user, requestId: null }, 'doubt'),
      ]),
    );
    const rows = await rowsOf(user);
    for (const id of ids) {
      const own = rows.filter((r) => r.id === id || r.key === `close:${id}`).map((r) => r.type);
      expect([['void'], ['debit', 'refund']]).toContainEqual(own);
    }
    expect(await ctx.books(user)).toMatchObject({ balance: 10_000, sum: 10_000 });
  });
});
