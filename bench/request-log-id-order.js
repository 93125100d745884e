#!/usr/bin/env node
'use strict';
/**
 * Postgres cost of request-log ids: random (gen_random_uuid, v4) against time-ordered (UUIDv7,
 * the column's default since migration 1732300014000) on a day partition that already holds
 * PREFILL rows (docs/performance.md, item 21). Two tables shaped like request_logs (its columns,
 * defaults, primary key and indexes) in one scratch database migrated with our CLI, one with
 * its id default put back to random; batches of 500 rows, as the writer sends them, alternate
 * between the two, a CHECKPOINT every CHECKPOINT_EVERY batches. The backend's CPU is read from
 * /proc (Postgres must run on this machine), the WAL from pg_current_wal_insert_lsn.
 *
 *   npm run build && node bench/request-log-id-order.js     (PREFILL=5000000 BATCHES=300)
 */
const path = require('node:path');
const sy = require('./lib/switchyard');
const { processCpuUs } = require('./lib/procstat');

const { Client } = require(path.join(sy.ROOT, 'node_modules/pg'));
const ADMIN_URL = sy.adminDatabaseUrl();
const PREFILL = Number(process.env.PREFILL || 5_000_000);
const BATCHES = Number(process.env.BATCHES || 300);
const CHECKPOINT_EVERY = Number(process.env.CHECKPOINT_EVERY || 50);
const ROWS = 500;
const KEY = '00000000-0000-4000-8000-000000000001';
const USER = '00000000-0000-4000-8000-000000000002';

function rowsSelect(createdAt) {
  return `SELECT gen_random_uuid()::text, '${KEY}'::uuid, '${USER}'::uuid, 'POST', '/v1/chat/completions',
            'bench-model', 'bench-upstream', 200, 1.5, 12, 20, false, 2, ${createdAt}`;
}
const COLUMNS = `(request_id, api_key_id, user_id, method, route, model, provider, status_code,
  latency_ms, prompt_tokens, completion_tokens, cached, credits, created_at)`;

async function main() {
  const database = await sy.createDatabase(ADMIN_URL, `rl_ids_${Date.now()}`);
  const client = new Client({ connectionString: database.url });
  try {
    sy.migrate(database.url);
    await client.connect();
    const tables = { 'random (v4)': 'rl_random', 'time-ordered (v7)': 'rl_ordered' };
    for (const table of Object.values(tables)) {
      await client.query(`CREATE TABLE ${table} (LIKE request_logs INCLUDING DEFAULTS)`);
      await client.query(`ALTER TABLE ${table} ADD PRIMARY KEY (id, created_at)`);
      await client.query(`CREATE INDEX ON ${table} (created_at)`);
      await client.query(`CREATE INDEX ON ${table} (api_key_id, created_at)`);
    }
    await client.query(`ALTER TABLE rl_random ALTER COLUMN id SET DEFAULT gen_random_uuid()`);
    for (const table of Object.values(tables)) {
      await client.query(
        `INSERT INTO ${table} ${COLUMNS}
         ${rowsSelect("now() - interval '1 hour' + g * interval '100 microseconds'")}
         FROM generate_series(1, $1::int) AS g`,
        [PREFILL],
      );
      await client.query(`VACUUM ANALYZE ${table}`);
    }
    const { rows } = await client.query('SELECT pg_backend_pid() AS pid');
    const pid = rows[0].pid;
    const totals = Object.fromEntries(
      Object.keys(tables).map((name) => [name, { cpuUs: 0, wal: 0 }]),
    );
    const names = Object.keys(tables);
    for (let i = 0; i < BATCHES; i++) {
      if (i % CHECKPOINT_EVERY === 0) await client.query('CHECKPOINT');
      for (const name of i % 2 ? names : [...names].reverse()) {
        const lsn = await sy.walInsertLsn(client);
        const cpuUs = processCpuUs(pid);
        await client.query(
          `INSERT INTO ${tables[name]} ${COLUMNS} ${rowsSelect('clock_timestamp()')} FROM generate_series(1, ${ROWS})`,
        );
        totals[name].cpuUs += processCpuUs(pid) - cpuUs;
        totals[name].wal += (await sy.walInsertLsn(client)) - lsn;
      }
    }
    const written = BATCHES * ROWS;
    console.log(
      `request logs: a table of ${PREFILL} rows; ${BATCHES} batches of ${ROWS}, a checkpoint every ${CHECKPOINT_EVERY}`,
    );
    for (const [name, t] of Object.entries(totals)) {
      console.log(
        `${name.padEnd(18)} backend CPU ${(t.cpuUs / written).toFixed(1)} µs, WAL ${(t.wal / written).toFixed(0)} bytes per row`,
      );
    }
  } finally {
    await client.end();
    await sy.dropDatabase(ADMIN_URL, database.name);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
