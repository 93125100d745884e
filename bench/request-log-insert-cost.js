#!/usr/bin/env node
'use strict';
/**
 * CPU per request-log row written (docs/performance.md, item 18): this build's columns and
 * `INSERT … SELECT FROM unnest(…)` against the VALUES list with fifteen parameters per row that
 * came before it. A scratch database migrated with our CLI; 500-row batches go each way in
 * turn; the client's CPU is read with process.cpuUsage(), each backend's from /proc, so
 * Postgres must run on this machine.
 *
 *   npm run build && node bench/request-log-insert-cost.js        (BATCHES=200)
 */
const path = require('node:path');
const { randomUUID } = require('node:crypto');
const sy = require('./lib/switchyard');
const { processCpuUs } = require('./lib/procstat');

const { Client } = require(path.join(sy.ROOT, 'node_modules/pg'));
const { RequestLogBatch, REQUEST_LOG_BATCH_ROWS: ROWS } = require(
  path.join(sy.ROOT, 'dist/libs/database/src/request-log.buffer'),
);
const { INSERT_BATCH } = require(path.join(sy.ROOT, 'dist/libs/database/src/request-log.writer'));
const ADMIN_URL = sy.adminDatabaseUrl();
const BATCHES = Number(process.env.BATCHES || 200);
const WARM_UP = 20;

/** One batch of rows as the gateway records them. */
function entries() {
  const apiKeyId = randomUUID();
  const userId = randomUUID();
  return Array.from({ length: ROWS }, (_, i) => ({
    requestId: randomUUID(),
    apiKeyId,
    userId,
    method: 'POST',
    route: '/v1/chat/completions',
    model: 'bench-model',
    provider: 'bench-upstream',
    statusCode: 200,
    latencyMs: 1.2345 + i,
    promptTokens: 12,
    completionTokens: 9,
    cached: false,
    credits: 3,
    error: null,
    createdAt: new Date(),
  }));
}

/** The write before item 18: a VALUES list, fifteen parameters per row. */
async function valuesInsert(client, rows) {
  const params = [];
  const tuples = rows.map((e) => {
    const first = params.length + 1;
    params.push(
      e.requestId,
      e.apiKeyId,
      e.userId,
      e.method,
      e.route,
      e.model,
      e.provider,
      e.statusCode,
      e.latencyMs,
      e.promptTokens,
      e.completionTokens,
      e.cached,
      e.credits,
      e.error,
      e.createdAt,
    );
    return `(${Array.from({ length: 15 }, (_, j) => `$${first + j}`).join(', ')})`;
  });
  await client.query(
    `INSERT INTO request_logs (request_id, api_key_id, user_id, method, route, model, provider,
       status_code, latency_ms, prompt_tokens, completion_tokens, cached, credits, error, created_at)
     VALUES ${tuples.join(', ')}`,
    params,
  );
}

/** This build's write: the rows as columns, one statement text. */
async function columnsInsert(client, rows) {
  const batch = new RequestLogBatch();
  for (const e of rows) batch.push(e);
  await client.query(INSERT_BATCH, batch.columns());
}

async function main() {
  const database = await sy.createDatabase(ADMIN_URL, `request_logs_${Date.now()}`);
  sy.migrate(database.url);
  const ways = [
    { name: 'VALUES, 15 parameters a row', write: valuesInsert },
    { name: 'columns, unnest (this build)', write: columnsInsert },
  ];
  try {
    for (const way of ways) {
      way.client = new Client({ connectionString: database.url });
      await way.client.connect();
      way.pid = (await way.client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      way.clientUs = 0;
      way.backendUs = 0;
    }
    for (let i = 0; i < WARM_UP + BATCHES; i++) {
      for (const way of i % 2 ? ways : [...ways].reverse()) {
        const rows = entries();
        const backendUs = processCpuUs(way.pid);
        const start = process.cpuUsage();
        await way.write(way.client, rows);
        const used = process.cpuUsage(start);
        if (i < WARM_UP) continue;
        way.clientUs += used.user + used.system;
        way.backendUs += processCpuUs(way.pid) - backendUs;
      }
    }
    const rows = BATCHES * ROWS;
    console.log(`${BATCHES} batches of ${ROWS} rows each way`);
    for (const way of ways) {
      const backendUs = way.backendUs / rows;
      console.log(
        `${way.name.padEnd(30)} gateway CPU ${(way.clientUs / rows).toFixed(1)} µs, Postgres backend CPU ${backendUs.toFixed(1)} µs per row`,
      );
    }
  } finally {
    for (const way of ways) await way.client?.end();
    await sy.dropDatabase(ADMIN_URL, database.name);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
