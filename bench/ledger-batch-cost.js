#!/usr/bin/env node
'use strict';
/**
 * Postgres CPU of `credits_apply_batch` as this build runs it, against the same statement not
 * prepared (item 22) and against the loop of migration 1732300010000 (item 15). Three scratch
 * databases migrated with our CLI; in the last the function is put back to that loop. Batches go
 * to the three in turn (the order reversed every batch, so the machine's drift hits all), and
 * each backend's CPU time is read from /proc, so Postgres must run on this machine.
 *
 * By default every batch settles the previous batch's holds and holds N new ones, as the
 * gateway's batches under load do; PURE=1 sends N holds, then their N settles, as two batches.
 *
 *   npm run build && node bench/ledger-batch-cost.js        (N=20 BATCHES=800; N=1 BATCHES=3000)
 */
const path = require('node:path');
const sy = require('./lib/switchyard');
const { processCpuUs } = require('./lib/procstat');
const {
  openScratchLedger,
  closeScratchLedger,
  applyBatch,
  settlesAndHolds,
} = require('./lib/ledger');

const { CreditsLedgerBatch1732300010000: Loop } = require(
  path.join(sy.ROOT, 'dist/migrations/1732300010000-credits-ledger-batch'),
);
const ADMIN_URL = sy.adminDatabaseUrl();
const N = Number(process.env.N || 20);
const BATCHES = Number(process.env.BATCHES || (N === 1 ? 3000 : 800));
const PURE = process.env.PURE === '1';

async function contender(name, { useLoop = false, prepared = true } = {}) {
  const ledger = await openScratchLedger(ADMIN_URL, name, async (client) => {
    if (useLoop) await new Loop().up({ query: (sql) => client.query(sql) });
  });
  return { ...ledger, prepared, name, cpuUs: 0, wallNs: 0n };
}

async function oneBatch(t) {
  if (!PURE) return settlesAndHolds(t, N);
  const held = await applyBatch(t, Array(N).fill('debit'), Array(N).fill(null), Array(N).fill(10));
  await applyBatch(
    t,
    Array(N).fill('settle'),
    held.map((r) => r.o_id),
    Array(N).fill(3),
  );
}

async function main() {
  const contenders = [
    await contender('current'),
    await contender('unprepared', { prepared: false }),
    await contender('loop', { useLoop: true }),
  ];
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
        `${t.name.padEnd(10)} backend CPU ${cpuUs.toFixed(1)} µs, wall ${wallUs.toFixed(1)} µs per request (hold + settle)`,
      );
    }
  } finally {
    for (const t of contenders) await closeScratchLedger(ADMIN_URL, t);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
