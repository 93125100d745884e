#!/usr/bin/env node
'use strict';
// Experiment behind the billing rows of docs/performance.md: how fast can one user's
// requests reserve and settle credits when they all touch the same user_credits row?
//
// It runs the ledger SQL patterns directly against a scratch database (migrated with our
// CLI), with CONCURRENCY request loops sharing a pool of POOL connections, like the gateway:
//   current     reserve (one statement) + settle as today: a transaction of BEGIN, a locking
//               SELECT, an idempotency SELECT, the UPDATE+INSERT, COMMIT
//   one-stmt    reserve + settle as ONE statement (lock, idempotency check, update, ledger row)
//   fixed-price reserve only: a model priced per request needs no settle
// each with synchronous_commit on and off.
//
//   node bench/credits-contention.js          (SECONDS=10 CONCURRENCY=64 POOL=20)
const path = require('node:path');
const { randomBytes } = require('node:crypto');
const sy = require('./lib/switchyard');
const { summarize, fmt, markdownTable } = require('./lib/stats');

const { Pool } = require(path.join(sy.ROOT, 'node_modules/pg'));
const SECONDS = Number(process.env.SECONDS || 10);
const CONCURRENCY = Number(process.env.CONCURRENCY || 64);
const POOL = Number(process.env.POOL || 20);
const ADMIN_URL = sy.adminDatabaseUrl();

const LEDGER = `INSERT INTO credit_ledger (user_id, event_type, amount, balance_after, idempotency_key, request_id, description)`;

async function reserve(pool, userId, amount, requestId) {
  const { rows } = await pool.query(
    `WITH held AS (
       UPDATE user_credits SET balance = balance - $2::bigint, updated_at = now()
       WHERE user_id = $1 AND balance >= $2::bigint RETURNING balance)
     ${LEDGER} SELECT $1, 'debit', -$2::bigint, balance, NULL, $3, 'Reservation' FROM held
     RETURNING id`,
    [userId, amount, requestId],
  );
  return rows[0].id;
}

/** Today's settle: one transaction, the row lock held across four round trips and the commit. */
async function settleInTransaction(pool, reservationId, actual, requestId) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const held = await client.query(
      `SELECT d.user_id, -d.amount AS reserved, uc.balance
       FROM credit_ledger d JOIN user_credits uc ON uc.user_id = d.user_id
       WHERE d.id = $1 AND d.event_type = 'debit' FOR UPDATE OF uc`,
      [reservationId],
    );
    const { user_id: userId, reserved } = held.rows[0];
    const key = `close:${reservationId}`;
    await client.query(`SELECT id FROM credit_ledger WHERE user_id = $1 AND idempotency_key = $2`, [
      userId,
      key,
    ]);
    const delta = Number(reserved) - actual;
    await client.query(
      `WITH acct AS (UPDATE user_credits SET balance = balance + $2::bigint, updated_at = now()
                     WHERE user_id = $1 RETURNING balance)
       ${LEDGER} SELECT $1, 'settle', $2::bigint, balance, $3, $4, 'Settled to usage' FROM acct`,
      [userId, delta, key, requestId],
    );
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

/**
 * The same settle as one statement: the row lock is taken and released within it, so other
 * requests of the same user wait for one statement and its commit, not for four round trips.
 */
async function settleInOneStatement(pool, reservationId, actual, requestId) {
  await pool.query(
    `WITH held AS (
       SELECT d.user_id, -d.amount AS reserved FROM credit_ledger d
       WHERE d.id = $1 AND d.event_type = 'debit'),
     acct AS (
       SELECT uc.user_id, uc.balance, held.reserved FROM user_credits uc
       JOIN held ON held.user_id = uc.user_id FOR UPDATE OF uc),
     delta AS (
       SELECT user_id, CASE WHEN $2::bigint <= reserved THEN reserved - $2::bigint
                            ELSE -LEAST(balance, $2::bigint - reserved) END AS amount
       FROM acct
       WHERE NOT EXISTS (SELECT 1 FROM credit_ledger c
                         WHERE c.user_id = acct.user_id AND c.idempotency_key = $3)),
     upd AS (
       UPDATE user_credits uc SET balance = uc.balance + delta.amount, updated_at = now()
       FROM delta WHERE uc.user_id = delta.user_id
       RETURNING uc.user_id, uc.balance, delta.amount)
     ${LEDGER} SELECT user_id, 'settle', amount, balance, $3, $4, 'Settled to usage' FROM upd`,
    [reservationId, actual, `close:${reservationId}`, requestId],
  );
}

const PATTERNS = {
  current: async (pool, userId, requestId) => {
    const id = await reserve(pool, userId, 40, requestId);
    await settleInTransaction(pool, id, 23, requestId);
  },
  'one-stmt': async (pool, userId, requestId) => {
    const id = await reserve(pool, userId, 40, requestId);
    await settleInOneStatement(pool, id, 23, requestId);
  },
  'fixed-price': async (pool, userId, requestId) => {
    await reserve(pool, userId, 23, requestId);
  },
};

async function measure(pool, userId, run) {
  const latencies = [];
  let errors = 0;
  const deadline = Date.now() + SECONDS * 1000;
  const started = process.hrtime.bigint();
  let n = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < deadline) {
        const t0 = process.hrtime.bigint();
        try {
          await run(pool, userId, `exp-${n++}`);
          latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  return { rps: latencies.length / elapsed, ...summarize(latencies), errors };
}

async function main() {
  sy.ensureBuilt((line) => process.stdout.write(`${line}\n`));
  const db = await sy.createDatabase(ADMIN_URL, `credits_${randomBytes(3).toString('hex')}`);
  const rows = [];
  try {
    sy.migrate(db.url);
    for (const commit of ['on', 'off']) {
      await sy.setSynchronousCommit(ADMIN_URL, db.name, commit);
      const pool = new Pool({ connectionString: db.url, max: POOL });
      try {
        const user = await pool.query(`INSERT INTO users (username) VALUES ($1) RETURNING id`, [
          `exp-${commit}`,
        ]);
        const userId = user.rows[0].id;
        await pool.query(`INSERT INTO user_credits (user_id, balance) VALUES ($1, 1000000000000)`, [
          userId,
        ]);
        for (const [name, run] of Object.entries(PATTERNS)) {
          const r = await measure(pool, userId, run);
          rows.push([name, commit, fmt(r.rps, 0), fmt(r.p50), fmt(r.p99), String(r.errors)]);
          process.stdout.write(`${name} synchronous_commit=${commit}: ${fmt(r.rps, 0)} req/s\n`);
        }
      } finally {
        await pool.end();
      }
    }
  } finally {
    await sy.dropDatabase(ADMIN_URL, db.name);
  }
  process.stdout.write(
    `\none user, ${CONCURRENCY} concurrent requests, pool of ${POOL}, ${SECONDS} s each\n\n`,
  );
  process.stdout.write(
    `${markdownTable(
      [
        { title: 'pattern' },
        { title: 'synchronous_commit' },
        { title: 'requests/s', align: 'right' },
        { title: 'p50 ms', align: 'right' },
        { title: 'p99 ms', align: 'right' },
        { title: 'errors', align: 'right' },
      ],
      rows,
    )}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err.message}\n`);
  process.exit(1);
});
