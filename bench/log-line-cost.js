#!/usr/bin/env node
'use strict';
/**
 * CPU per structured log line (docs/performance.md, item 19): the gateway's logger
 * (createLogger: redactLogFields in pino's formatters) against pino's own `redact` option with
 * the same rule (PINO_REDACT_PATHS, a superset of the paths it was given before), and against
 * pino with no redaction at all. Lines go to
 * /dev/null; the three loggers take turns so the machine's drift hits all of them.
 *
 *   npm run build && node bench/log-line-cost.js        (LINES=30000 per turn, 6 turns)
 */
const fs = require('node:fs');
const path = require('node:path');
const sy = require('./lib/switchyard');

const pino = require(path.join(sy.ROOT, 'node_modules/pino'));
const { createLogger, PINO_REDACT_PATHS } = require(
  path.join(sy.ROOT, 'dist/libs/observability/src/logger'),
);

const LINES = Number(process.env.LINES || 30000);
const TURNS = 6;
const sink = fs.createWriteStream('/dev/null');
const options = {
  level: 'info',
  base: { service: 'switchyard' },
  timestamp: pino.stdTimeFunctions.isoTime,
  messageKey: 'msg',
  formatters: { level: (label) => ({ level: label }) },
};
const loggers = {
  gateway: createLogger({ level: 'info' }, sink),
  'pino redact, same rule': pino(
    { ...options, redact: { paths: [...PINO_REDACT_PATHS], censor: '[REDACTED]' } },
    sink,
  ),
  'pino, no redaction': pino(options, sink),
};

// The shape of the gateway's commonest structured line: an upstream attempt that failed.
const line = (i) => ({
  request_id: `req-${i}`,
  provider: 'bench-upstream',
  model: 'bench-model',
  outcome: 'upstream_error',
  upstream_status: 502,
  latency_ms: 12,
});

const cpuUs = Object.fromEntries(Object.keys(loggers).map((name) => [name, 0]));
for (let turn = 0; turn < TURNS; turn++) {
  for (const [name, logger] of Object.entries(loggers)) {
    const start = process.cpuUsage();
    for (let i = 0; i < LINES; i++) logger.warn(line(i), 'upstream attempt failed: HTTP 502');
    const used = process.cpuUsage(start);
    if (turn > 0) cpuUs[name] += used.user + used.system; // the first turn warms up
  }
}
for (const [name, us] of Object.entries(cpuUs)) {
  console.log(`${name.padEnd(24)} ${(us / ((TURNS - 1) * LINES)).toFixed(2)} µs of CPU per line`);
}
