#!/usr/bin/env node
'use strict';
/**
 * Postgres CPU of `credits_apply_batch`, this build's against the loop of migration
 * 1732300010000 (docs/performance.md item 15). Two scratch databases migrated with our CLI; in
 * one the function is put back to that loop. Batches go to the two in turn (the order swapped
 * every batch, so the machine's drift hits both), and each backend's CPU time is read from
 * /proc, so Postgres must run on this machine.
 *
 * By default every batch settles the previous batch's holds and holds N new ones, as the
 * gateway's batches under load do; PURE=1 sends N holds, then their N settles, as two batches.
 *
 *   npm run build && node bench/ledger-batch-cost.js        (N=20 BATCHES=800; N=1 BATCHES=3000)
 */
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const sy = require('./lib/switchyard');
const { processCpuUs } = require('./lib/procstat');

const { Client } = require(path.join(sy.ROOT, 'node_modules/pg'));
const { CreditsLedgerBatch1732300010000: Loop } = require(
  path.join(sy.ROOT, 'dist/migrations/1732300010000-credits-ledger-batch'),
);
const ADMIN_URL = sy.adminDatabaseUrl();
const N = Number(process.env.N || 20);
const BATCHES = Number(process.env.BATCHES || (N === 1 ? 3000 : 800));
const PURE = process.env.PURE === '1';
const APPLY = `SELECT * FROM credits_apply_batch(
  $1::text[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[])`;

async function contender(name, useLoop) {
  const database = await sy.createDatabase(ADMIN_URL, `ledger_${Date.now()}_${name}`);
  sy.migrate(database.url);
  const client = new Client({ connectionString: database.url });
  await client.connect();
  if (useLoop) await new Loop().up({ query: (sql) => client.query(sql) });
  const user = randomUUID();
  await client.query(`INSERT INTO users (id, username) VALUES ($1, $2)`, [user, `bench-${user}`]);
  await client.query(`INSERT INTO user_credits (user_id, balance) VALUES ($1, 1000000000000)`, [
    user,
  ]);
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  return { name, database, client, user, pid: rows[0].pid, open: [], cpuUs: 0, wallNs: 0n };
}

async function apply(t, kinds, refs, amounts) {
  const n = kinds.length;
  const requests = Array.from({ length: n }, () => randomUUID());
  const { rows } = await t.client.query(APPLY, [
    kinds,
    Array(n).fill(t.user),
    refs,
    amounts,
    requests,
    Array(n).fill('bench'),
  ]);
  return rows;
}

async function oneBatch(t) {
  if (PURE) {
    const held = await apply(t, Array(N).fill('debit'), Array(N).fill(null), Array(N).fill(10));
    await apply(
      t,
      Array(N).fill('settle'),
      held.map((r) => r.o_id),
      Array(N).fill(3),
    );
    return;
  }
  const k = t.open.length;
  const rows = await apply(
    t,
    [...Array(k).fill('settle'), ...Array(N).fill('debit')],
    [...t.open, ...Array(N).fill(null)],
    [...Array(k).fill(3), ...Array(N).fill(10)],
  );
  t.open = rows.slice(k).map((r) => r.o_id);
}

async function main() {
  const contenders = [await contender('current', false), await contender('loop', true)];
  try {
    for (let i = 0; i < 50; i++) for (const t of contenders) await oneBatch(t);
    for (let i = 0; i < BATCHES; i++) {
      for (const t of i % 2 ? contenders : [...contenders].reverse()) {
        const cpuUs = processCpuUs(t.pid);
        const start = process.hrtime.bigint();
        await oneBatch(t);
        t.wallNs += process.hrtime.bigint() - start;
        t.cpuUs += processCpuUs(t.pid) - cpuUs;
      }
    }
    const requests = BATCHES * N;
    console.log(
      `N=${N} ${PURE ? 'holds, then their settles' : 'mixed (settles of the last batch + new holds)'}, ${BATCHES} batches`,
    );
    for (const t of contenders) {
      const cpuUs = t.cpuUs / requests;
      const wallUs = Number(t.wallNs) / 1e3 / requests;
      console.log(
        `${t.name.padEnd(8)} backend CPU ${cpuUs.toFixed(1)} µs, wall ${wallUs.toFixed(1)} µs per request (hold + settle)`,
      );
    }
  } finally {
    for (const t of contenders) {
      await t.client.end();
      await sy.dropDatabase(ADMIN_URL, t.database.name);
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
