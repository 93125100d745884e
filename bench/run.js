#!/usr/bin/env node
'use strict';
// `npm run bench`: Switchyard's overhead next to a bare Node proxy and the Portkey gateway,
// all in front of the same mock upstream. See docs/performance.md for the method and the
// settings; BENCH_QUICK=1 runs a short version.
//
// Layout: this process is the load generator (autocannon as a library), pinned to one core;
// the mock, the proxies and Switchyard are pinned to another. Postgres and Redis are the
// machine's own (not pinned; their CPU is reported in its own column).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { randomBytes } = require('node:crypto');

const { readSettings } = require('./lib/settings');
const { ensurePeers } = require('./lib/peers');
const proc = require('./lib/processes');
const procstat = require('./lib/procstat');
const sy = require('./lib/switchyard');
const load = require('./lib/load');
const report = require('./lib/report');
const { replaceBetween, fmt, summarize } = require('./lib/stats');

const DOCS_FILE = path.join(sy.ROOT, 'docs/performance.md');
const DOCS_START = '<!-- bench:results:start (written by npm run bench) -->';
const DOCS_END = '<!-- bench:results:end -->';

const settings = readSettings(process.env);
const stamp = new Date()
  .toISOString()
  .replace(/[-:]/g, '')
  .replace(/\..*/, '')
  .replace('T', '_')
  .toLowerCase();
const runName = `bench-${stamp}${settings.quick ? '-quick' : ''}${settings.profile ? '-profile' : ''}`;
fs.mkdirSync(settings.resultsDir, { recursive: true });
const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-bench-'));
const printed = [];
function log(line = '') {
  printed.push(line);
  process.stdout.write(`${line}\n`);
}

const state = { servers: {}, databases: [], redisPrefixes: [], cleaning: null };

async function cleanup() {
  state.cleaning ??= (async () => {
    await proc.stopAll();
    for (const db of settings.keepDatabase ? [] : state.databases) {
      await sy.dropDatabase(settings.adminDatabaseUrl, db.name).catch((err) => {
        process.stderr.write(`could not drop ${db.name}: ${err.message}\n`);
      });
    }
    for (const prefix of state.redisPrefixes) {
      await sy.cleanRedis(settings.redisUrl, prefix).catch((err) => {
        process.stderr.write(`could not delete Redis keys ${prefix}*: ${err.message}\n`);
      });
    }
  })();
  return state.cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    process.stderr.write(`\n${signal}: stopping servers and cleaning up\n`);
    cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}
process.on('exit', () => proc.killAllSync());

// ---------------------------------------------------------------------------------------
// Servers

async function startJsonServer(name, script, env, cpu) {
  const port = await proc.freePort();
  const server = proc.startServer({
    name,
    command: process.execPath,
    args: [script],
    env: { ...env, MOCK_PORT: String(port), PROXY_PORT: String(port) },
    cpu,
    logFile: path.join(runDir, `${name}.log`),
  });
  await proc.waitForPort(server, port);
  return { ...server, url: `http://127.0.0.1:${port}` };
}

async function startPortkey(peers, cpu) {
  const port = await proc.freePort();
  const server = proc.startServer({
    name: 'portkey',
    command: process.execPath,
    args: [peers.portkeyServer, `--port=${port}`, '--headless'],
    env: {},
    cpu,
    logFile: path.join(runDir, 'portkey.log'),
  });
  await proc.waitForPort(server, port);
  return { ...server, url: `http://127.0.0.1:${port}` };
}

/**
 * One Switchyard instance with its own database and Redis prefix. `asyncCommit` sets
 * synchronous_commit=off on that database (a Postgres setting, no code change): the variant
 * shows how much of the billing cost is waiting for the WAL flush of each commit.
 */
async function startSwitchyard(
  name,
  mockUrl,
  cpu,
  { asyncCommit = false, main = sy.GATEWAY_MAIN, extraEnv = {}, extraNodeArgs = [] } = {},
) {
  sy.ensureBuilt(log);
  const redisPrefix = `sybench${randomBytes(3).toString('hex')}:`;
  state.redisPrefixes.push(redisPrefix);
  const database = await sy.createDatabase(
    settings.adminDatabaseUrl,
    `${stamp}_${randomBytes(2).toString('hex')}`,
  );
  state.databases.push(database);
  const migrated = sy.migrate(database.url);
  if (asyncCommit) await sy.setSynchronousCommit(settings.adminDatabaseUrl, database.name, 'off');
  log(
    `${name}: database ${database.name}${asyncCommit ? ' (synchronous_commit=off)' : ''}: ${migrated.split('\n')[0]}`,
  );
  const port = await proc.freePort();
  const { env, bootstrapKey } = sy.gatewayEnv({
    port,
    databaseUrl: database.url,
    redisUrl: settings.redisUrl,
    redisPrefix,
    providersFile: sy.writeProvidersFile(runDir, mockUrl),
    logLevel: settings.logLevel,
  });
  Object.assign(env, extraEnv);
  // The node flags of `npm start` (heap sizing), so the gateway runs as users start it.
  const startFlags = (
    require('../package.json').scripts.start.match(/\s(--[\w-]+=\S+)/g) ?? []
  ).map((flag) => flag.trim());
  const nodeArgs =
    settings.cpuProfile && name === 'switchyard'
      ? ['--cpu-prof', `--cpu-prof-dir=${path.join(runDir, 'prof')}`]
      : [];
  const startedAt = Date.now();
  const server = proc.startServer({
    name,
    command: process.execPath,
    args: [...startFlags, ...nodeArgs, ...settings.gatewayNodeArgs, ...extraNodeArgs, main],
    env,
    cpu,
    logFile: path.join(runDir, `${name}.log`),
  });
  await proc.waitForPort(server, port);
  const url = `http://127.0.0.1:${port}`;
  const viaAdmin = await sy.provisionThroughAdminApi(url, env);
  let key = viaAdmin.key;
  let keySource = 'admin API (POST /admin/users, POST /admin/keys)';
  if (!key) {
    key = bootstrapKey;
    keySource = `bootstrap key from API_KEYS (admin API path unavailable: ${viaAdmin.reason})`;
  }
  return { ...server, url, key, keySource, env, startedAt, database };
}

/**
 * Database operations per chat request, from the gateway's own metrics
 * (gateway_db_query_duration_seconds_count by operation over http_requests_total of the chat
 * route): the evidence for how many round trips the pipeline makes.
 */
async function dbOperationsPerRequest() {
  const gw = state.servers.switchyard;
  if (!gw) return null;
  let text;
  try {
    const res = await fetch(`${gw.url}/metrics`);
    if (!res.ok) return null;
    text = await res.text();
  } catch {
    return null;
  }
  fs.writeFileSync(path.join(settings.resultsDir, `${runName}.metrics.txt`), text);
  const ops = new Map();
  let chat = 0;
  for (const line of text.split('\n')) {
    const op = /^gateway_db_query_duration_seconds_count\{.*operation="([^"]+)".*\} (\S+)/.exec(
      line,
    );
    if (op) ops.set(op[1], (ops.get(op[1]) ?? 0) + Number(op[2]));
    const req = /^http_requests_total\{(.*)\} (\S+)/.exec(line);
    if (req && req[1].includes('route="/v1/chat/completions"')) chat += Number(req[2]);
  }
  if (!chat) return null;
  return {
    chat,
    ops: [...ops.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([op, n]) => ({ op, n, perRequest: n / chat })),
  };
}

// ---------------------------------------------------------------------------------------
// Targets: one row each. Every target gets the same request shape; only the model name
// (priced or free) and the id inside the user message differ.

function requestBody({ model, stream, unique, temperature = 0 }) {
  return JSON.stringify({
    model,
    messages: [
      { role: 'system', content: 'You are a helpful assistant.' },
      {
        role: 'user',
        content: `Say hello in one short sentence.${unique ? ` (request ${load.ID_MARKER})` : ''}`,
      },
    ],
    max_tokens: 32,
    temperature,
    ...(stream ? { stream: true } : {}),
  });
}

function makeTargets(servers) {
  const json = { 'content-type': 'application/json' };
  const path = '/v1/chat/completions';
  const t = {};
  t.direct = {
    url: `${servers.mock.url}${path}`,
    headers: { ...json, authorization: 'Bearer sk-bench' },
    model: sy.PRICED_MODEL,
    pid: null,
  };
  if (servers.bare) {
    t.bare = {
      url: `${servers.bare.url}${path}`,
      headers: t.direct.headers,
      model: sy.PRICED_MODEL,
      pid: servers.bare.pid,
    };
  }
  if (servers.portkey) {
    t.portkey = {
      url: `${servers.portkey.url}${path}`,
      headers: {
        ...t.direct.headers,
        'x-portkey-provider': 'openai',
        'x-portkey-custom-host': `${servers.mock.url}/v1`,
      },
      model: sy.PRICED_MODEL,
      pid: servers.portkey.pid,
    };
  }
  if (servers.switchyard) {
    const headers = { ...json, authorization: `Bearer ${servers.switchyard.key}` };
    const gw = { url: `${servers.switchyard.url}${path}`, headers, pid: servers.switchyard.pid };
    t.switchyard = { ...gw, model: sy.PRICED_MODEL };
    t['switchyard-nobill'] = { ...gw, model: sy.FREE_MODEL };
    t['switchyard-hit'] = { ...gw, model: sy.PRICED_MODEL, fixedBody: true };
    // temperature > 0: not deterministic, so the cache is bypassed (no Redis get/set).
    t['switchyard-nobill-nocache'] = { ...gw, model: sy.FREE_MODEL, temperature: 0.7 };
  }
  if (servers.switchyardCandidate) {
    const candidate = servers.switchyardCandidate;
    t['switchyard-candidate'] = {
      url: `${candidate.url}${path}`,
      headers: { ...json, authorization: `Bearer ${candidate.key}` },
      pid: candidate.pid,
      model: sy.PRICED_MODEL,
    };
  }
  if (servers.switchyardAsync) {
    const async = servers.switchyardAsync;
    t['switchyard-async'] = {
      url: `${async.url}${path}`,
      headers: { ...json, authorization: `Bearer ${async.key}` },
      pid: async.pid,
      model: sy.PRICED_MODEL,
    };
  }
  return t;
}

function targetFor(base, name, scenario) {
  return {
    name,
    url: base.url,
    headers: base.headers,
    pid: base.pid,
    body: requestBody({
      model: base.model,
      stream: scenario.stream,
      unique: !base.fixedBody,
      temperature: base.temperature,
    }),
  };
}

// ---------------------------------------------------------------------------------------
// Measurement

function serverPids() {
  return Object.values(state.servers)
    .filter(Boolean)
    .map((s) => s.pid);
}

/** CPU snapshot: the target's tree, the mock, our Postgres+Redis, the servers we started, the machine. */
function snapshot(targetPid) {
  const table = procstat.processTable();
  const tree = procstat.treeUsage(targetPid, table);
  let ours = procstat.selfTicks();
  for (const pid of serverPids()) ours += procstat.treeUsage(pid, table)?.ticks ?? 0;
  return {
    serverTicks: tree?.ticks ?? null,
    rssBytes: tree?.rssBytes ?? null,
    io: procstat.syscalls(targetPid),
    mockTicks: procstat.treeUsage(state.servers.mock?.pid, table)?.ticks ?? 0,
    dataStores: procstat.dataStoreTicks(
      state.databases.map((d) => d.name),
      table,
    ),
    ours,
    machine: procstat.machineTicks(),
  };
}

function usageBetween(a, b, elapsed) {
  const hz = procstat.clockTicks;
  const dbTicks = procstat.ticksBetween(a.dataStores, b.dataStores);
  const other = b.machine.busy - a.machine.busy - (b.ours - a.ours) - dbTicks;
  return {
    serverTicks:
      a.serverTicks == null || b.serverTicks == null ? null : b.serverTicks - a.serverTicks,
    rssBytes: b.rssBytes,
    mockTicks: b.mockTicks - a.mockTicks,
    dbTicks,
    syscalls: a.io && b.io ? b.io.reads - a.io.reads + (b.io.writes - a.io.writes) : null,
    otherPct: Math.max(0, (100 * other) / hz / elapsed),
    stealPct: (100 * (b.machine.steal - a.machine.steal)) / hz / elapsed,
  };
}

async function drive(autocannon, scenario, target, seconds, record) {
  if (scenario.mode === 'ttfc') return load.runStreamingClient(target, { seconds, record });
  return load.runAutocannon(autocannon, target, { connections: scenario.c, seconds, record });
}

async function setMockTiming(delayMs, chunkDelayMs) {
  const res = await fetch(`${state.servers.mock.url}/__bench/config`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ delayMs, chunkDelayMs }),
  });
  if (!res.ok) throw new Error(`mock refused its timing: HTTP ${res.status}`);
}

/** One check request per target: it must answer 2xx (and for Switchyard, say x-cache). */
async function preflight(target, scenario) {
  try {
    const r = await load.requestOnce(target);
    const ok = r.status >= 200 && r.status < 300;
    const extra = ['x-cache', 'x-provider']
      .map((h) => (r.headers.get(h) ? `${h}=${r.headers.get(h)}` : null))
      .filter(Boolean)
      .join(' ');
    const isStream = scenario.stream && r.text.includes('data: [DONE]');
    const detail = ok
      ? scenario.stream
        ? isStream
          ? 'SSE ok'
          : 'NOT SSE'
        : `${r.text.length}B`
      : r.text.slice(0, 160);
    return {
      ok: ok && (!scenario.stream || isStream),
      line: `HTTP ${r.status} ${detail} ${extra}`.trim(),
    };
  } catch (err) {
    return { ok: false, line: `request failed: ${err.message}` };
  }
}

async function runScenario(autocannon, scenario, allTargets) {
  log('');
  log(`## ${scenario.title}`);
  await setMockTiming(scenario.delayMs, scenario.chunkDelayMs ?? 0);
  const targets = [];
  const skipped = [];
  for (const name of scenario.targets) {
    if (settings.skip.has(name)) continue;
    if (!allTargets[name]) {
      skipped.push(`${name} (not started)`);
      continue;
    }
    const target = targetFor(allTargets[name], name, scenario);
    const check = await preflight(target, scenario);
    log(`preflight ${name.padEnd(18)} ${check.line}`);
    if (check.ok) targets.push(target);
    else skipped.push(`${name} (preflight: ${check.line})`);
  }
  const aggs = new Map(targets.map((t) => [t.name, report.newAggregate(t.name, scenario.c)]));
  const seconds = scenario.seconds ?? settings.duration;
  for (let round = 1; round <= settings.rounds; round++) {
    // A B C, then C B A: slow drift of the machine hits every target about equally.
    const order = round % 2 === 1 ? targets : [...targets].reverse();
    for (const target of order) {
      if (settings.warmup > 0) await drive(autocannon, scenario, target, settings.warmup, false);
      const before = snapshot(target.pid);
      const run = await drive(autocannon, scenario, target, seconds, true);
      const after = snapshot(target.pid);
      const usage = usageBetween(before, after, run.elapsed);
      report.addRun(aggs.get(target.name), run, usage);
      const s = summarize(run.latencies);
      log(
        `  round ${round} ${target.name.padEnd(18)} ${fmt(run.responses / run.elapsed, 0).padStart(6)} req/s` +
          `  p50 ${fmt(s.p50)} p99 ${fmt(s.p99)} ms  non2xx ${run.non2xx} errors ${run.errors + run.timeouts}` +
          `  other CPU ${usage.otherPct.toFixed(0)}% steal ${usage.stealPct.toFixed(0)}%`,
      );
    }
  }
  const rows = report.buildRows(aggs, procstat.clockTicks, (name) => name !== 'direct');
  const table = report.scenarioTable(scenario, rows);
  log('');
  log(table);
  if (skipped.length) log(`\nnot measured: ${skipped.join('; ')}`);
  return { scenario, rows, table, skipped };
}

async function runSoak(autocannon, scenario, allTargets) {
  log('');
  log(`## ${scenario.title}`);
  const base = allTargets.switchyard;
  if (!base) {
    log('not measured: switchyard not started');
    return null;
  }
  await setMockTiming(0, 0);
  const target = targetFor(base, 'switchyard', scenario);
  const samples = [];
  const t0 = Date.now();
  const timer = setInterval(() => {
    const u = procstat.treeUsage(target.pid);
    if (u) samples.push({ t: (Date.now() - t0) / 1000, rssBytes: u.rssBytes });
  }, 5000);
  const before = snapshot(target.pid);
  const run = await load.runAutocannon(autocannon, target, {
    connections: scenario.c,
    seconds: settings.soakSeconds,
    record: true,
  });
  clearInterval(timer);
  const after = snapshot(target.pid);
  samples.push({ t: (Date.now() - t0) / 1000, rssBytes: after.rssBytes });
  const agg = report.newAggregate('switchyard', scenario.c);
  report.addRun(agg, run, usageBetween(before, after, run.elapsed));
  const rows = report.buildRows(new Map([['switchyard', agg]]), procstat.clockTicks, () => true);
  const summary = report.soakSummary(samples, settings.soakSeconds);
  const table = report.scenarioTable(scenario, rows);
  log(table);
  log('');
  log(`RSS MB every 5 s: ${summary.samples.map((s) => s.rssMB).join(' ')}`);
  log(
    `RSS mean of the first third (after warm-up) ${fmt(summary.firstMB, 0)} MB, of the last third ` +
      `${fmt(summary.lastMB, 0)} MB (drift ${fmt(100 * summary.drift, 1)} %), max ${fmt(summary.maxMB, 0)} MB`,
  );
  return { scenario, rows, table, skipped: [], soak: summary };
}

// ---------------------------------------------------------------------------------------

/**
 * Non-2xx responses a gateway logged, by status and error code ("503 database_unavailable":
 * n), read from its request log lines; explains a non-2xx column without keeping the logs.
 */
async function failuresInLog(file) {
  const counts = new Map();
  if (!fs.existsSync(file)) return counts;
  const lines = require('node:readline').createInterface({ input: fs.createReadStream(file) });
  for await (const line of lines) {
    const status = /"status":(\d+)/.exec(line);
    if (!status || status[1].startsWith('2') || !line.includes('"request completed"')) continue;
    const code = /"error":"([^"]*)"/.exec(line)?.[1] ?? '';
    const key = `${status[1]} ${code}`.trim();
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/**
 * What a gateway's log says went wrong, by status and error code. 499s are told apart: requests
 * in flight when the load generator closed its connections at the end of a round, which the
 * gateway logs as a client that left; no client saw them fail.
 */
function loggedNon2xx(name, counts) {
  const entries = Object.entries(counts);
  const cut = entries.filter(([k]) => k.startsWith('499')).reduce((sum, [, n]) => sum + n, 0);
  const failed = entries.filter(([k]) => !k.startsWith('499')).map(([k, n]) => `${n} × ${k}`);
  const lines = [];
  if (failed.length) lines.push(`Non-2xx responses in the ${name} log: ${failed.join(', ')}`);
  if (cut)
    lines.push(`${name}: ${cut} requests cut by the load generator at round ends (logged 499)`);
  return lines;
}

function topFrames(profileDir) {
  if (!fs.existsSync(profileDir)) return null;
  const files = fs.readdirSync(profileDir).filter((f) => f.endsWith('.cpuprofile'));
  if (!files.length) return null;
  const file = path.join(settings.resultsDir, `${runName}.cpuprofile`);
  fs.copyFileSync(path.join(profileDir, files[0]), file);
  return file;
}

function renderDocsBlock(meta, results, goals, warns) {
  const lines = [];
  lines.push(`_Written by \`${meta.command}\` on ${meta.when}._`);
  lines.push('');
  if (meta.provisional) {
    lines.push(`**Provisional:** ${meta.provisional}`);
    lines.push('');
  }
  lines.push(`- Machine: ${meta.machine}`);
  lines.push(`- Pinning: ${meta.pinning}`);
  lines.push(
    `- Per target and round: ${settings.warmup} s warm-up (discarded) + ${settings.duration} s measured; ${settings.rounds} round(s), order reversed every round; ${settings.prewarm} s prewarm per target first`,
  );
  lines.push(`- Peers: ${meta.peers}`);
  lines.push(
    `- Switchyard: commit ${meta.commit}, NODE_ENV=production, LOG_LEVEL=${settings.logLevel}, Postgres ${meta.pgVersion}, Redis at ${settings.redisUrl}; key from ${meta.keySource}`,
  );
  lines.push(`- Machine load at start: loadavg ${meta.loadavg}`);
  lines.push('');
  lines.push('### Goals');
  lines.push('');
  lines.push(report.goalsTable(goals));
  for (const r of results) {
    lines.push('');
    lines.push(`### ${r.scenario.title}`);
    lines.push('');
    lines.push(r.table);
    if (r.soak) {
      lines.push('');
      lines.push(
        `RSS MB every 5 s: ${r.soak.samples.map((s) => s.rssMB).join(' ')}; mean of the last third vs the first third (after warm-up): ${fmt(100 * r.soak.drift, 1)} %.`,
      );
    }
    if (r.skipped.length) {
      lines.push('');
      lines.push(`Not measured: ${r.skipped.join('; ')}`);
    }
  }
  if (warns.length) {
    lines.push('');
    lines.push('### Warnings');
    lines.push('');
    for (const w of warns) lines.push(`- ${w}`);
  }
  for (const [name, counts] of Object.entries(meta.failures ?? {})) {
    for (const line of loggedNon2xx(name, counts)) lines.push('', `${line}.`);
  }
  return lines.join('\n');
}

function gitCommit() {
  try {
    const { execFileSync } = require('node:child_process');
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      cwd: sy.ROOT,
      encoding: 'utf8',
    }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: sy.ROOT,
      encoding: 'utf8',
    }).trim();
    return dirty ? `${head} (+ uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

async function pgVersion() {
  try {
    const { Client } = require(path.join(sy.ROOT, 'node_modules/pg'));
    const c = new Client({ connectionString: settings.adminDatabaseUrl });
    await c.connect();
    const r = await c.query('SHOW server_version');
    await c.end();
    return r.rows[0].server_version;
  } catch {
    return 'unknown';
  }
}

async function main() {
  const started = Date.now();
  const layout = proc.cpuLayout(settings);
  const serverCpu = layout.pinned ? settings.serverCpu : null;
  if (layout.pinned && !proc.pinSelf(settings.loadgenCpu))
    throw new Error('taskset could not pin the load generator');
  const pinning = layout.pinned
    ? `load generator on CPU ${settings.loadgenCpu}, servers on CPU ${settings.serverCpu} (taskset); Postgres and Redis not pinned`
    : `none (${layout.reason})`;
  const cpus = os.cpus();
  const meta = {
    command: `${settings.quick ? 'BENCH_QUICK=1 ' : ''}npm run bench`,
    when: new Date().toISOString(),
    machine: `${cpus.length} × ${cpus[0]?.model ?? 'CPU'}, Node ${process.version}, ${os.release()}`,
    loadavg: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(' '),
    pinning,
    commit: gitCommit(),
    pgVersion: await pgVersion(),
  };
  log(`# Switchyard benchmark ${meta.when} ${settings.label}`);
  log(`${meta.machine}; loadavg ${meta.loadavg}`);
  log(`pinning: ${pinning}`);
  log(`server logs: ${runDir} (deleted after a successful run unless BENCH_KEEP_LOGS=1)`);

  const peers = ensurePeers(settings.peerDir, log);
  const autocannon = peers.require('autocannon');
  meta.peers = Object.entries(peers.versions)
    .map(([n, v]) => `${n} ${v}`)
    .join(', ');
  log(`peers: ${meta.peers}`);

  const wanted = new Set(settings.scenarios.flatMap((s) => s.targets));
  state.servers.mock = await startJsonServer(
    'mock',
    path.join(__dirname, 'mock-upstream.js'),
    {},
    serverCpu,
  );
  if (wanted.has('bare') && !settings.skip.has('bare')) {
    state.servers.bare = await startJsonServer(
      'bare',
      path.join(__dirname, 'bare-proxy.js'),
      { UPSTREAM_URL: state.servers.mock.url },
      serverCpu,
    );
  }
  if (wanted.has('portkey') && !settings.skip.has('portkey')) {
    state.servers.portkey = await startPortkey(peers, serverCpu);
  }
  if ([...wanted].some((n) => n.startsWith('switchyard'))) {
    state.servers.switchyard = await startSwitchyard(
      'switchyard',
      state.servers.mock.url,
      serverCpu,
    );
    meta.keySource = state.servers.switchyard.keySource;
    if (settings.candidateMain) {
      state.servers.switchyardCandidate = await startSwitchyard(
        'switchyard-candidate',
        state.servers.mock.url,
        serverCpu,
        {
          main: settings.candidateMain,
          extraEnv: settings.candidateEnv,
          extraNodeArgs: settings.candidateNodeArgs,
        },
      );
      const changed = [
        ...settings.candidateNodeArgs,
        ...Object.entries(settings.candidateEnv).map(([k, v]) => `${k}=${v}`),
      ];
      log(
        `switchyard-candidate: ${settings.candidateMain}${changed.length ? ` with ${changed.join(' ')}` : ''}`,
      );
    }
    if (wanted.has('switchyard-async') && !settings.skip.has('switchyard-async')) {
      state.servers.switchyardAsync = await startSwitchyard(
        'switchyard-async',
        state.servers.mock.url,
        serverCpu,
        { asyncCommit: true },
      );
    }
    log(
      `switchyard ${state.servers.switchyard.url} (pid ${state.servers.switchyard.pid}); key: ${meta.keySource}`,
    );
  }
  const allTargets = makeTargets(state.servers);

  if (settings.prewarm > 0) {
    // JIT warm-up once per server so that round 1 is not slower than round 2.
    await setMockTiming(0, 0);
    const servers = ['direct', 'bare', 'portkey', 'switchyard', 'switchyard-candidate'];
    for (const name of [...servers, 'switchyard-async']) {
      if (!allTargets[name] || settings.skip.has(name) || !wanted.has(name)) continue;
      const target = targetFor(allTargets[name], name, { stream: false });
      await load.runAutocannon(autocannon, target, {
        connections: 64,
        seconds: settings.prewarm,
        record: false,
      });
    }
    log(`prewarm: ${settings.prewarm} s per server at c=64 (not measured)`);
  }
  const measureFrom = Date.now();

  const results = [];
  for (const scenario of settings.scenarios) {
    const result =
      scenario.mode === 'soak'
        ? await runSoak(autocannon, scenario, allTargets)
        : await runScenario(autocannon, scenario, allTargets);
    if (result) results.push(result);
  }

  const soak = results.find((r) => r.soak)?.soak ?? null;
  const goals = report.checkGoals(results, soak);
  const warns = report.warnings(results, settings);
  // Which scenarios ran while other work used the machine: those figures are provisional.
  const busyOf = (r) => Math.max(0, ...r.rows.map((x) => x.otherMax ?? 0));
  const busy = results.filter((r) => busyOf(r) > settings.otherCpuWarn);
  if (busy.length) {
    const quiet = results.filter((r) => !busy.includes(r));
    const list = busy.map((r) => `${r.scenario.id} (up to ${busyOf(r).toFixed(0)} %)`).join(', ');
    meta.provisional =
      `other processes used CPU during ${list}; rerun ${busy.length === 1 ? 'it' : 'them'} on a quiet machine for final figures.` +
      (quiet.length
        ? ` The other scenarios (${quiet.map((r) => r.scenario.id).join(', ')}) ran with other CPU ≤ ${settings.otherCpuWarn} %.`
        : '');
  }
  if (settings.quick)
    meta.provisional =
      `${meta.provisional ?? ''} BENCH_QUICK=1: short runs, indicative only.`.trim();
  log('');
  log('## Goals');
  log('');
  log(report.goalsTable(goals));
  if (warns.length) {
    log('');
    for (const w of warns) log(`warning: ${w}`);
  }

  const dbOps = await dbOperationsPerRequest();
  if (dbOps) {
    log('');
    log(`database operations per chat request (${dbOps.chat} chat requests, all rows):`);
    for (const o of dbOps.ops) log(`  ${o.perRequest.toFixed(3).padStart(7)}  ${o.op}`);
  }
  const gatewayStartedAt = state.servers.switchyard?.startedAt;
  await cleanup();
  const failures = {};
  for (const name of ['switchyard', 'switchyard-async', 'switchyard-candidate']) {
    const counts = await failuresInLog(path.join(runDir, `${name}.log`));
    if (counts.size) failures[name] = Object.fromEntries(counts);
  }
  for (const [name, counts] of Object.entries(failures))
    for (const line of loggedNon2xx(name, counts)) log(line);
  meta.failures = failures;
  const profile = topFrames(path.join(runDir, 'prof'));
  if (profile) {
    const skipMs = gatewayStartedAt ? measureFrom - gatewayStartedAt : 0;
    log('');
    log(
      `CPU profile of the gateway: ${profile} (start-up and prewarm, the first ${skipMs} ms, left out)`,
    );
    log(require('./profile').summarizeProfile(profile, 30, skipMs));
  }
  log(`total bench time ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const block = renderDocsBlock(meta, results, goals, warns);
  const mdFile = path.join(settings.resultsDir, `${runName}.md`);
  fs.writeFileSync(mdFile, `${printed.join('\n')}\n`);
  fs.writeFileSync(
    path.join(settings.resultsDir, `${runName}.json`),
    JSON.stringify(
      {
        meta,
        settings: { ...settings, skip: [...settings.skip] },
        goals,
        dbOps,
        results: results.map(({ scenario, rows, soak: s }) => ({ scenario, rows, soak: s })),
      },
      null,
      2,
    ),
  );
  if (settings.keepLogs) log(`server logs kept in ${runDir}`);
  else fs.rmSync(runDir, { recursive: true, force: true });
  if (settings.writeDocs) {
    const current = fs.existsSync(DOCS_FILE)
      ? fs.readFileSync(DOCS_FILE, 'utf8')
      : '# Performance\n';
    fs.writeFileSync(DOCS_FILE, replaceBetween(current, DOCS_START, DOCS_END, block));
    log(`results written to docs/performance.md and ${path.relative(sy.ROOT, mdFile)}`);
  } else {
    log(
      `results written to ${path.relative(sy.ROOT, mdFile)} (docs/performance.md unchanged; BENCH_WRITE_DOCS=1 to update it)`,
    );
  }
  const empty = results.flatMap((r) => r.rows).filter((r) => r.samples === 0);
  if (empty.length) process.exitCode = 2;
}

main().catch(async (err) => {
  process.stderr.write(`bench failed: ${err.stack || err.message}\n`);
  await cleanup();
  process.exit(1);
});
