#!/usr/bin/env node
'use strict';
/**
 * What one per-request pattern costs the young generation, on a bare node:http server (the
 * bisect behind docs/performance.md item 13). Runs the server in a child under --trace-gc-nvp
 * with the gateway's young-generation size, sends it sequential POSTs, and prints the median
 * bytes surviving each scavenge and the median pause.
 *
 *   npm run build && node bench/gc-survivors.js [plain|bind|lean-bind|abort-signal|cancellation]
 */
const { spawn } = require('node:child_process');
const http = require('node:http');
const path = require('node:path');
const { AsyncResource } = require('node:async_hooks');

const VARIANTS = {
  plain: () => undefined,
  // Fastify binds one per request body it parses.
  bind: () => new AsyncResource('bench').bind(() => undefined)(),
  'lean-bind': () => new AsyncResource('bench').bind(() => undefined)(),
  // The gateway made three per request before item 13.
  'abort-signal': () => {
    for (let i = 0; i < 3; i++) new AbortController().signal;
  },
  cancellation: () => {
    for (let i = 0; i < 3; i++) new Cancellation().signal;
  },
};
const dist = path.join(__dirname, '..', 'dist');
let Cancellation;

function serve(variant) {
  if (variant === 'lean-bind')
    require(path.join(dist, 'apps/gateway/src/lean-async-bind')).installLeanAsyncResourceBind();
  if (variant === 'cancellation')
    ({ Cancellation } = require(path.join(dist, 'libs/generation/src/upstream/cancellation')));
  const perRequest = VARIANTS[variant];
  const answer = JSON.stringify({ object: 'chat.completion', choices: [{ index: 0 }] });
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      JSON.parse(Buffer.concat(chunks).toString());
      perRequest();
      res.writeHead(200, { 'content-type': 'application/json' }).end(answer);
    });
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${server.address().port}\n`));
}

async function drive(variant, requests) {
  const child = spawn(
    process.execPath,
    ['--max-semi-space-size=32', '--trace-gc-nvp', __filename, 'serve', variant],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  const port = await new Promise((resolve) =>
    child.stdout.on('data', (d) => {
      out += d;
      const m = /ready (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    }),
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
  for (let i = 0; i < requests; i++)
    await new Promise((resolve, reject) => {
      const req = http.request(
        { port, method: 'POST', agent, headers: { 'content-type': 'application/json' } },
        (res) => res.resume().on('end', resolve),
      );
      req.on('error', reject);
      req.end(body);
    });
  child.kill();
  await new Promise((resolve) => child.on('exit', resolve));
  const scavenges = out
    .split('\n')
    .filter((l) => /\bgc=s\b/.test(l))
    .map((l) => ({
      survived: Number(/new_space_survived=(\d+)/.exec(l)?.[1]),
      pause: Number(/pause=([\d.]+)/.exec(l)?.[1]),
    }))
    .slice(1); // the first one still holds start-up
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  const kb = median(scavenges.map((s) => s.survived)) / 1024;
  const ms = median(scavenges.map((s) => s.pause));
  console.log(
    `${variant}: ${scavenges.length} scavenges, median ${kb.toFixed(1)} KB surviving, ${ms} ms pause`,
  );
}

if (process.argv[2] === 'serve') serve(process.argv[3]);
else {
  const wanted = process.argv.slice(2);
  const variants = wanted.length ? wanted : Object.keys(VARIANTS);
  for (const v of variants) if (!VARIANTS[v]) throw new Error(`unknown variant ${v}`);
  (async () => {
    for (const v of variants) await drive(v, Number(process.env.REQUESTS || 60000));
  })().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
