#!/usr/bin/env node
'use strict';
/**
 * Postgres cost of the ledger's row ids: random (gen_random_uuid, v4) against time-ordered
 * (UUIDv7) in `credits_apply_batch`, on a ledger that already holds PREFILL rows, as a
 * production one does (docs/performance.md, item 21). Random keys land anywhere in the primary
 * key's B-tree (and, through `close:<debit id>`, in the idempotency key's), so a big ledger's
 * inserts touch pages all over both indexes; after a checkpoint each first touch of a page also
 * writes the whole page to the WAL. Time-ordered keys append at the right edge.
 *
 * Three scratch ledgers: in one `credits_apply_batch` is put back to random ids (migration
 * 1732300012000's version); the third also gets request ids as the gateway makes them when the
 * client sends none (time-ordered, for the ledger's request_id index) instead of random ones.
 * Batches go to them in turn (the order swapped every batch), a CHECKPOINT is taken every
 * CHECKPOINT_EVERY batches, as checkpoint_timeout would, and each backend's CPU is read
 * from /proc (Postgres must run on this machine) and the WAL written from pg_current_wal_insert_lsn.
 *
 *   npm run build && node bench/ledger-id-order.js     (PREFILL=2000000 N=20 BATCHES=600)
 */
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const sy = require('./lib/switchyard');
const { processCpuUs } = require('./lib/procstat');
const { openScratchLedger, closeScratchLedger, settlesAndHolds } = require('./lib/ledger');

const { creditsApplyBatchSql } = require(
  path.join(sy.ROOT, 'dist/migrations/1732300012000-credits-ledger-batch-rows'),
);
const { uuidV7 } = require(path.join(sy.ROOT, 'dist/libs/observability/src/http-observability'));
const ADMIN_URL = sy.adminDatabaseUrl();
const N = Number(process.env.N || 20);
const BATCHES = Number(process.env.BATCHES || 600);
const PREFILL = Number(process.env.PREFILL || 2_000_000);
const CHECKPOINT_EVERY = Number(process.env.CHECKPOINT_EVERY || 100);

/**
 * `randomIds`: this build's function with gen_random_uuid() ids, as before item 21.
 * `requestId`: how the batch's request ids are made (randomUUID, or the gateway's own).
 */
async function contender(name, randomIds, requestId = randomUUID) {
  const newId = randomIds ? 'gen_random_uuid()' : 'uuid_v7()';
  const ledger = await openScratchLedger(
    ADMIN_URL,
    randomIds ? 'v4' : 'v7',
    async (client, user) => {
      await client.query(creditsApplyBatchSql(newId, { holdIds: true }));
      // A ledger's history: holds and their settles, with the ids this contender writes.
      await client.query(
        `INSERT INTO credit_ledger (id, user_id, event_type, amount, balance_after, idempotency_key, request_id, description, created_at)
       SELECT ${newId}, $1, CASE WHEN g % 2 = 0 THEN 'debit' ELSE 'settle' END, 1, 1,
              CASE WHEN g % 2 = 1 THEN 'close:' || gen_random_uuid()::text END,
              gen_random_uuid()::text, 'prefill', now() - interval '1 day' + g * interval '1 ms'
       FROM generate_series(1, $2::int) AS g`,
        [user, PREFILL],
      );
      await client.query('VACUUM ANALYZE credit_ledger');
    },
  );
  // The first two let the function make hold ids, as before the gateway named them; the third
  // names them as the gateway does.
  const holdId = requestId === randomUUID ? null : uuidV7;
  return { ...ledger, name, requestId, holdId, cpuUs: 0, walBytes: 0 };
}

const oneBatch = (t) => settlesAndHolds(t, N, t.requestId);

async function main() {
  const contenders = [];
  try {
    contenders.push(await contender('random (v4)', true));
    contenders.push(await contender('time-ordered (v7)', false));
    contenders.push(await contender('+ v7 request ids', false, uuidV7));
    for (let i = 0; i < 20; i++) for (const t of contenders) await oneBatch(t);
    for (let i = 0; i < BATCHES; i++) {
      if (i % CHECKPOINT_EVERY === 0) await contenders[0].client.query('CHECKPOINT');
      for (const t of i % 2 ? contenders : [...contenders].reverse()) {
        const lsn = await sy.walInsertLsn(t.client);
        const cpuUs = processCpuUs(t.pid);
        await oneBatch(t);
        t.cpuUs += processCpuUs(t.pid) - cpuUs;
        t.walBytes += (await sy.walInsertLsn(t.client)) - lsn;
      }
    }
    const requests = BATCHES * N;
    console.log(
      `ledger of ${PREFILL} rows; N=${N} (settles of the last batch + new holds), ${BATCHES} batches, a checkpoint every ${CHECKPOINT_EVERY}`,
    );
    for (const t of contenders) {
      console.log(
        `${t.name.padEnd(18)} backend CPU ${(t.cpuUs / requests).toFixed(1)} µs, WAL ${(t.walBytes / requests).toFixed(0)} bytes per request (hold + settle)`,
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
