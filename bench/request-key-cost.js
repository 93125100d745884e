#!/usr/bin/env node
'use strict';
/**
 * CPU per request of the two digests every chat request computes before it reaches the
 * upstream (docs/performance.md, item 20): the response cache's plan (its directives from the
 * headers, then the key: normalized request, canonical JSON, sha256), made twice per request
 * (prefetch and lookup), and the presented API key's sha256 with its constant-time check
 * against the cached row. The body and headers are the benchmark's chat request.
 *
 *   npm run build && node bench/request-key-cost.js        (ITERATIONS=200000 per turn, 5 turns)
 */
const path = require('node:path');
const sy = require('./lib/switchyard');

const { planCache, parseCacheDirectives } = require(
  path.join(sy.ROOT, 'dist/libs/generation/src/cache/cache-key'),
);
const { hashApiKey, hashesEqual } = require(path.join(sy.ROOT, 'dist/libs/auth/src/api-key.util'));

const ITERATIONS = Number(process.env.ITERATIONS || 200000);
const TURNS = 5;

const body = {
  model: 'bench-model',
  messages: [
    { role: 'system', content: 'You are a helpful assistant.' },
    { role: 'user', content: 'Say hello in one short sentence. (request bench-1234)' },
  ],
  max_tokens: 32,
  temperature: 0,
};
const headers = {
  host: '127.0.0.1:8080',
  'content-type': 'application/json',
  authorization: 'Bearer sk-sy-0123456789abcdefghijABCDEFGHIJ0123456789',
  'content-length': '220',
};
const scope = { kind: 'user', userId: '0b9f6a8e-3c1d-4f7a-9e2b-5d4c3b2a1f00' };
const apiKey = 'sk-sy-0123456789abcdefghijABCDEFGHIJ0123456789';
const storedHash = hashApiKey(apiKey);

const work = {
  'cache plan ×2 (prefetch + lookup)': () => {
    planCache(body, parseCacheDirectives(headers), scope);
    return planCache(body, parseCacheDirectives(headers), scope);
  },
  'API key hash + compare': () => hashesEqual(storedHash, hashApiKey(apiKey)),
};

function cpuMicros() {
  const { user, system } = process.cpuUsage();
  return user + system;
}

const results = Object.fromEntries(Object.keys(work).map((name) => [name, []]));
let sink = 0;
for (let turn = 0; turn < TURNS; turn++) {
  for (const [name, fn] of Object.entries(work)) {
    const start = cpuMicros();
    for (let i = 0; i < ITERATIONS; i++) if (fn()) sink++;
    results[name].push((cpuMicros() - start) / ITERATIONS);
  }
}
// The first turn warms the JIT; report the rest.
for (const [name, perOp] of Object.entries(results)) {
  const kept = perOp.slice(1).map((us) => us.toFixed(2));
  console.log(`${name.padEnd(36)} µs CPU per request: ${kept.join(' / ')}`);
}
if (sink === 0) console.log('(nothing computed)');
