'use strict';
/**
 * A scratch ledger for the scripts that time `credits_apply_batch` (ledger-batch-cost.js,
 * ledger-id-order.js): a database migrated with our CLI, one account whose balance never runs
 * out, and the pid of the connection's backend, whose CPU those scripts read from /proc. Batches
 * go out as the gateway's own statement, prepared as the gateway prepares it unless the ledger's
 * `prepared` is set to false, with hold ids made as the gateway makes them unless its `holdId` is
 * set to null (the function then makes them).
 */
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const sy = require('./switchyard');

const { Client } = require(path.join(sy.ROOT, 'node_modules/pg'));
const { APPLY_BATCH } = require(path.join(sy.ROOT, 'dist/libs/credits/src/ledger-batcher'));
const { uuidV7 } = require(path.join(sy.ROOT, 'dist/libs/observability/src/http-observability'));

/** `prepare(client, userId)` runs once the account exists: swap the function, prefill rows. */
async function openScratchLedger(adminUrl, tag, prepare = async () => {}) {
  const database = await sy.createDatabase(adminUrl, `ledger_${Date.now()}_${tag}`);
  sy.migrate(database.url);
  const client = new Client({ connectionString: database.url });
  await client.connect();
  const user = randomUUID();
  await client.query(`INSERT INTO users (id, username) VALUES ($1, $2)`, [user, `bench-${user}`]);
  await client.query(`INSERT INTO user_credits (user_id, balance) VALUES ($1, 1000000000000)`, [
    user,
  ]);
  await prepare(client, user);
  const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
  return { database, client, user, pid: rows[0].pid, open: [], prepared: true, holdId: uuidV7 };
}

async function closeScratchLedger(adminUrl, ledger) {
  await ledger.client.end();
  await sy.dropDatabase(adminUrl, ledger.database.name);
}

/** One batch statement: holds (`debit`, amount) and closes (`settle`/`refund` of a ref). */
async function applyBatch(ledger, kinds, refs, amounts, requestId = randomUUID) {
  const n = kinds.length;
  const { rows } = await ledger.client.query({
    ...(ledger.prepared ? APPLY_BATCH : { text: APPLY_BATCH.text }),
    values: [
      kinds,
      Array(n).fill(ledger.user),
      refs,
      amounts,
      Array.from({ length: n }, () => requestId()),
      Array(n).fill('bench'),
      kinds.map((kind) => (kind === 'debit' && ledger.holdId ? ledger.holdId() : null)),
    ],
  });
  return rows;
}

/**
 * A batch as the gateway's look under load: the settles of the previous batch's holds, then
 * `holds` new holds, which the next call settles.
 */
async function settlesAndHolds(ledger, holds, requestId = randomUUID) {
  const k = ledger.open.length;
  const rows = await applyBatch(
    ledger,
    [...Array(k).fill('settle'), ...Array(holds).fill('debit')],
    [...ledger.open, ...Array(holds).fill(null)],
    [...Array(k).fill(3), ...Array(holds).fill(10)],
    requestId,
  );
  ledger.open = rows.slice(k).map((r) => r.o_id);
}

module.exports = { openScratchLedger, closeScratchLedger, applyBatch, settlesAndHolds };
