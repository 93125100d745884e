'use strict';
// Benchmark settings from the environment, and the scenario list.
const os = require('node:os');
const path = require('node:path');
const { adminDatabaseUrl } = require('./switchyard');

const GATEWAY_MAIN = path.join(__dirname, '..', '..', 'dist/apps/gateway/src/main.js');

function num(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`${name} must be a non-negative number, got ${raw}`);
  return n;
}

function flag(env, name, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  return ['1', 'true', 'yes'].includes(raw.toLowerCase());
}

/**
 * The full pipeline and its variants, so each stage's cost shows as the difference between
 * two rows: switchyard-async (Postgres commits without waiting for the WAL flush),
 * switchyard-nobill (a free model: no credit writes), switchyard-nobill-nocache (also no
 * cache lookup/store).
 */
const STAGES = [
  'direct',
  'bare',
  'portkey',
  'switchyard',
  'switchyard-async',
  'switchyard-nobill',
  'switchyard-nobill-nocache',
];

/**
 * Scenarios. `targets` are row names (see targets in run.js). mode: 'load' (autocannon),
 * 'ttfc' (sequential streaming client), 'soak' (long run with RSS samples).
 */
function scenarios(s) {
  const all = [
    {
      id: 'chat-c1',
      title: 'Non-streaming chat, c=1, upstream 0 ms',
      mode: 'load',
      c: 1,
      delayMs: 0,
      stream: false,
      targets: STAGES,
    },
    {
      id: 'chat-c64',
      title: 'Non-streaming chat, c=64, upstream 0 ms',
      mode: 'load',
      c: 64,
      delayMs: 0,
      stream: false,
      targets: STAGES,
    },
    {
      id: 'chat-c64-50ms',
      title: 'Non-streaming chat, c=64, upstream 50 ms',
      mode: 'load',
      c: 64,
      delayMs: 50,
      stream: false,
      targets: ['direct', 'bare', 'portkey', 'switchyard', 'switchyard-async'],
    },
    {
      id: 'stream-c1',
      title: 'Streaming chat, c=1, time to first chunk (upstream sends 7 events 2 ms apart)',
      mode: 'ttfc',
      c: 1,
      delayMs: 0,
      chunkDelayMs: 2,
      stream: true,
      targets: ['direct', 'bare', 'portkey', 'switchyard', 'switchyard-nobill'],
    },
    {
      id: 'stream-c64',
      title: 'Streaming chat, c=64, upstream 0 ms',
      mode: 'load',
      c: 64,
      delayMs: 0,
      stream: true,
      targets: ['direct', 'bare', 'portkey', 'switchyard'],
    },
    {
      id: 'cache-c64',
      title: 'Cache: hit path vs miss path, c=64, upstream 0 ms',
      mode: 'load',
      c: 64,
      delayMs: 0,
      stream: false,
      targets: ['direct', 'switchyard', 'switchyard-hit'],
    },
    {
      id: 'soak',
      title: `Memory soak: full pipeline, c=64, upstream 0 ms, ${s.soakSeconds} s`,
      mode: 'soak',
      c: 64,
      delayMs: 0,
      stream: false,
      targets: ['switchyard'],
    },
  ];
  if (s.profile) {
    return [
      {
        id: 'profile',
        title: `CPU profile: ${s.profileTarget}, c=${s.profileConcurrency}, upstream ${s.profileDelayMs} ms, ${s.profileSeconds} s`,
        mode: 'load',
        c: s.profileConcurrency,
        delayMs: s.profileDelayMs,
        stream: false,
        targets: [s.profileTarget],
        seconds: s.profileSeconds,
      },
    ];
  }
  if (!s.only.length) return all;
  const unknown = s.only.filter((id) => !all.some((sc) => sc.id === id));
  if (unknown.length)
    throw new Error(
      `unknown scenario(s): ${unknown.join(', ')} (known: ${all.map((x) => x.id).join(', ')})`,
    );
  return all.filter((sc) => s.only.includes(sc.id));
}

/** "a  b c" → ['a', 'b', 'c'] (unset → []). */
function words(text) {
  return (text || '').split(/\s+/).filter(Boolean);
}

/** "A=1 B=two" → { A: '1', B: 'two' }; anything else is a mistake worth stopping for. */
function parseEnvList(text) {
  const out = {};
  for (const pair of words(text)) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new Error(`BENCH_CANDIDATE_ENV: expected NAME=value, got "${pair}"`);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}

function readSettings(env) {
  const quick = flag(env, 'BENCH_QUICK', false);
  const profile = flag(env, 'BENCH_PROFILE', false);
  const s = {
    quick,
    profile,
    duration: num(env, 'DURATION', quick ? 3 : 10),
    warmup: num(env, 'WARMUP', quick ? 1 : 3),
    rounds: Math.max(1, num(env, 'ROUNDS', quick ? 1 : 2)),
    prewarm: num(env, 'PREWARM', quick ? 3 : 10),
    soakSeconds: num(env, 'SOAK_SECONDS', quick ? 20 : 120),
    profileSeconds: num(env, 'PROFILE_SECONDS', 20),
    profileTarget: env.PROFILE_TARGET || 'switchyard',
    profileConcurrency: num(env, 'PROFILE_CONCURRENCY', 64),
    profileDelayMs: num(env, 'PROFILE_DELAY_MS', 0),
    cpuProfile: flag(env, 'BENCH_CPU_PROF', profile),
    // Extra node flags for the gateways only, e.g. --heapsnapshot-signal=SIGUSR2.
    gatewayNodeArgs: words(env.BENCH_GATEWAY_NODE_ARGS),
    only: (env.SCENARIOS || '').split(/[\s,]+/).filter(Boolean),
    skip: new Set((env.SKIP_TARGETS || '').split(/[\s,]+/).filter(Boolean)),
    pin: flag(env, 'PIN', true),
    loadgenCpu: num(env, 'LOADGEN_CPU', 0),
    serverCpu: num(env, 'SERVER_CPU', 1),
    adminDatabaseUrl: adminDatabaseUrl(env),
    redisUrl: env.BENCH_REDIS_URL || env.REDIS_URL || 'redis://127.0.0.1:6379',
    peerDir: env.BENCH_PEER_DIR || path.join(os.tmpdir(), 'switchyard-bench-peers'),
    logLevel: env.BENCH_LOG_LEVEL || 'info',
    keepDatabase: flag(env, 'BENCH_KEEP_DB', false),
    keepLogs: flag(env, 'BENCH_KEEP_LOGS', false),
    resultsDir: env.BENCH_RESULTS_DIR || path.join(__dirname, '..', 'results'),
    writeDocs: flag(env, 'BENCH_WRITE_DOCS', !quick && !profile && !env.SCENARIOS),
    label: env.BENCH_LABEL || '',
    otherCpuWarn: num(env, 'OTHER_CPU_WARN', 10),
    stealWarn: num(env, 'STEAL_WARN', 20),
    noisySpread: num(env, 'NOISY_SPREAD', 0.25),
  };
  // A candidate build (another dist/, e.g. a branch or a patched copy) as one more row next to
  // the full pipeline, started and loaded exactly like it; or this build with some settings
  // changed (BENCH_CANDIDATE_ENV="CREDIT_SETTLE_AFTER_RESPONSE=true") or other node flags
  // (BENCH_CANDIDATE_NODE_ARGS="--single-threaded-gc"), or any of these together.
  s.candidateEnv = parseEnvList(env.BENCH_CANDIDATE_ENV);
  s.candidateNodeArgs = words(env.BENCH_CANDIDATE_NODE_ARGS);
  s.candidateMain = env.BENCH_CANDIDATE_MAIN
    ? path.resolve(env.BENCH_CANDIDATE_MAIN)
    : Object.keys(s.candidateEnv).length > 0 || s.candidateNodeArgs.length > 0
      ? GATEWAY_MAIN
      : null;
  s.scenarios = scenarios(s);
  if (s.candidateMain) {
    for (const sc of s.scenarios) {
      if (sc.mode !== 'soak' && sc.targets.includes('switchyard')) {
        const at = sc.targets.indexOf('switchyard') + 1;
        sc.targets = [...sc.targets.slice(0, at), 'switchyard-candidate', ...sc.targets.slice(at)];
      }
    }
  }
  return s;
}

module.exports = { readSettings };
