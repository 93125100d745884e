'use strict';
// Turns pooled measurements into table rows, checks the performance goals of issue 10, and
// renders everything as Markdown.
const { summarize, ratio, spread, fmt, signed, times, markdownTable } = require('./stats');

/** An empty accumulator for one target in one scenario. */
function newAggregate(target, c) {
  return {
    target,
    c,
    latencies: [],
    ttfc: [],
    responses: 0,
    elapsed: 0,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    rounds: [],
    rssMax: null,
    serverTicks: 0,
    serverKnown: true,
    syscalls: 0,
    syscallsKnown: true,
    dbTicks: 0,
    mockTicks: 0,
    loadgenCpuSeconds: 0,
    other: [],
    steal: [],
    rssSamples: [],
  };
}

/** Adds one measured run to the accumulator. `usage` holds the /proc deltas of that run. */
function addRun(agg, run, usage) {
  for (const v of run.latencies) agg.latencies.push(v);
  if (run.ttfc) for (const v of run.ttfc) agg.ttfc.push(v);
  agg.responses += run.responses;
  agg.elapsed += run.elapsed;
  agg.non2xx += run.non2xx;
  agg.errors += run.errors;
  agg.timeouts += run.timeouts;
  agg.rounds.push(run.responses / run.elapsed);
  agg.loadgenCpuSeconds += run.loadgenCpuSeconds;
  if (usage.serverTicks == null) agg.serverKnown = false;
  else agg.serverTicks += usage.serverTicks;
  if (usage.rssBytes != null) agg.rssMax = Math.max(agg.rssMax ?? 0, usage.rssBytes);
  if (usage.syscalls == null) agg.syscallsKnown = false;
  else agg.syscalls += usage.syscalls;
  agg.dbTicks += usage.dbTicks;
  agg.mockTicks += usage.mockTicks;
  agg.other.push(usage.otherPct);
  agg.steal.push(usage.stealPct);
}

/**
 * Rows of one scenario. `aggs` maps target name to accumulator; `hasServer(name)` says whether
 * the target has its own process (everything but direct). Ratios compare req/s with the
 * direct, bare and portkey rows of the same scenario.
 */
function buildRows(aggs, clockTicks, hasServer) {
  const perTick = 1e6 / clockTicks; // µs of CPU per clock tick
  const rows = [];
  for (const agg of aggs.values()) {
    const lat = summarize(agg.latencies);
    const ttfc = summarize(agg.ttfc);
    const rps = agg.elapsed ? agg.responses / agg.elapsed : NaN;
    const own = hasServer(agg.target);
    rows.push({
      target: agg.target,
      c: agg.c,
      rps,
      rounds: agg.rounds,
      spread: spread(agg.rounds),
      samples: lat.count,
      p50: lat.p50,
      p90: lat.p90,
      p99: lat.p99,
      ttfcP50: ttfc.p50,
      ttfcP99: ttfc.p99,
      non2xx: agg.non2xx,
      errors: agg.errors + agg.timeouts,
      cpuUsPerReq:
        own && agg.serverKnown && agg.responses
          ? (agg.serverTicks * perTick) / agg.responses
          : null,
      cpuPct:
        own && agg.serverKnown && agg.elapsed
          ? (100 * agg.serverTicks) / clockTicks / agg.elapsed
          : null,
      rssMB: own && agg.rssMax != null ? agg.rssMax / 1048576 : null,
      syscallsPerReq:
        own && agg.syscallsKnown && agg.responses ? agg.syscalls / agg.responses : null,
      dbUsPerReq: agg.responses ? (agg.dbTicks * perTick) / agg.responses : null,
      upstreamUsPerReq: agg.responses ? (agg.mockTicks * perTick) / agg.responses : null,
      loadgenPct: agg.elapsed ? (100 * agg.loadgenCpuSeconds) / agg.elapsed : null,
      otherMax: agg.other.length ? Math.max(...agg.other) : null,
      stealMax: agg.steal.length ? Math.max(...agg.steal) : null,
    });
  }
  const find = (name) => rows.find((r) => r.target === name);
  const direct = find('direct');
  const bare = find('bare');
  const portkey = find('portkey');
  for (const r of rows) {
    if (direct && r !== direct) {
      r.dP50 = r.p50 - direct.p50;
      r.dP99 = r.p99 - direct.p99;
      r.dTtfcP50 = r.ttfcP50 - direct.ttfcP50;
      r.dTtfcP99 = r.ttfcP99 - direct.ttfcP99;
    }
    r.vsDirect = r === direct ? null : ratio(r.rps, direct?.rps);
    r.vsBare = r === bare ? null : ratio(r.rps, bare?.rps);
    r.vsPortkey = r === portkey ? null : ratio(r.rps, portkey?.rps);
  }
  return rows;
}

function scenarioTable(scenario, rows) {
  const ttfc = scenario.mode === 'ttfc';
  const columns = [
    ['target'],
    ['req/s', 'r'],
    ['req/s per round'],
    ...(ttfc
      ? [
          ['TTFC p50', 'r'],
          ['TTFC p99', 'r'],
          ['ΔTTFC p50', 'r'],
          ['ΔTTFC p99', 'r'],
        ]
      : []),
    [ttfc ? 'total p50' : 'p50', 'r'],
    [ttfc ? 'total p90' : 'p90', 'r'],
    [ttfc ? 'total p99' : 'p99', 'r'],
    ['non-2xx', 'r'],
    ['errors', 'r'],
    ['Δp50 vs direct', 'r'],
    ['Δp99 vs direct', 'r'],
    ['req/s ÷ direct', 'r'],
    ['÷ bare', 'r'],
    ['÷ portkey', 'r'],
    ['server CPU µs/req', 'r'],
    ['server CPU %', 'r'],
    ['RSS MB', 'r'],
    ['server read+write syscalls/req', 'r'],
    ['pg+redis CPU µs/req', 'r'],
    ['loadgen CPU %', 'r'],
    ['other CPU % (max)', 'r'],
    ['steal % (max)', 'r'],
  ].map(([title, a]) => ({ title, align: a === 'r' ? 'right' : 'left' }));
  const cells = rows.map((r) => [
    r.target,
    fmt(r.rps, 0),
    r.rounds.map((x) => x.toFixed(0)).join(' / '),
    ...(ttfc ? [fmt(r.ttfcP50), fmt(r.ttfcP99), signed(r.dTtfcP50), signed(r.dTtfcP99)] : []),
    fmt(r.p50),
    fmt(r.p90),
    fmt(r.p99),
    String(r.non2xx),
    String(r.errors),
    signed(r.dP50),
    signed(r.dP99),
    times(r.vsDirect, 3),
    times(r.vsBare),
    times(r.vsPortkey),
    fmt(r.cpuUsPerReq, 0),
    fmt(r.cpuPct, 0),
    fmt(r.rssMB, 0),
    fmt(r.syscallsPerReq, 1),
    fmt(r.dbUsPerReq, 0),
    fmt(r.loadgenPct, 0),
    fmt(r.otherMax, 0),
    fmt(r.stealMax, 0),
  ]);
  return markdownTable(columns, cells);
}

function row(results, scenarioId, target) {
  return results.find((s) => s.scenario.id === scenarioId)?.rows.find((r) => r.target === target);
}

/** The goals of issue 10, each with the measured value from this run (null when not run). */
function checkGoals(results, soak) {
  const goals = goalsFor(results, 'switchyard', '');
  const rssRows = results.flatMap((s) =>
    s.rows.filter((r) => r.target.startsWith('switchyard') && r.rssMB != null),
  );
  if (rssRows.length || soak) {
    const maxRss = Math.max(...rssRows.map((r) => r.rssMB), soak ? soak.maxMB : 0);
    goals.push({
      goal: 'memory: RSS ≤ 250 MB under load',
      measured: `${fmt(maxRss, 0)} MB`,
      ok: maxRss <= 250,
    });
  }
  if (soak) {
    goals.push({
      goal: `memory: flat ±10 % over the ${soak.seconds} s soak`,
      measured: `${signed(100 * soak.drift, 1)} %`,
      ok: Math.abs(soak.drift) <= 0.1,
    });
  }
  // The same goals for the variant with asynchronous commits, for comparison.
  for (const g of goalsFor(results, 'switchyard-async', ' [variant: synchronous_commit=off]')) {
    if (!g.goal.startsWith('cache') && !g.goal.startsWith('streaming')) goals.push(g);
  }
  return goals;
}

function goalsFor(results, target, suffix) {
  const goals = [];
  const add = (goal, measured, ok) => goals.push({ goal: `${goal}${suffix}`, measured, ok });
  const c64 = row(results, 'chat-c64', target);
  if (c64) {
    add(
      'c=64, 0 ms: ≥ 3× Portkey req/s',
      times(c64.vsPortkey),
      c64.vsPortkey == null ? null : c64.vsPortkey >= 3,
    );
    add(
      'c=64, 0 ms: ≥ 0.5× bare proxy req/s',
      times(c64.vsBare),
      c64.vsBare == null ? null : c64.vsBare >= 0.5,
    );
  }
  const c1 = row(results, 'chat-c1', target);
  if (c1) {
    add(
      'c=1: added p50 ≤ 1.0 ms',
      `${signed(c1.dP50)} ms`,
      c1.dP50 == null ? null : c1.dP50 <= 1.0,
    );
    add('c=1: added p99 ≤ 3 ms', `${signed(c1.dP99)} ms`, c1.dP99 == null ? null : c1.dP99 <= 3);
  }
  const d50 = row(results, 'chat-c64-50ms', target);
  if (d50) {
    add(
      'c=64, 50 ms: ≥ 0.95× direct req/s',
      times(d50.vsDirect, 3),
      d50.vsDirect == null ? null : d50.vsDirect >= 0.95,
    );
    add(
      'c=64, 50 ms: added p99 ≤ 15 ms',
      `${signed(d50.dP99)} ms`,
      d50.dP99 == null ? null : d50.dP99 <= 15,
    );
  }
  const hit = row(results, 'cache-c64', 'switchyard-hit');
  const miss = row(results, 'cache-c64', target);
  if (hit && miss) {
    const r = ratio(hit.rps, miss.rps);
    add('cache hit: ≥ 1.5× miss-path req/s', times(r), r == null ? null : r >= 1.5);
  }
  const st = row(results, 'stream-c1', target);
  if (st)
    add(
      'streaming c=1: TTFC adds ≤ 1 ms (p50)',
      `${signed(st.dTtfcP50)} ms`,
      st.dTtfcP50 == null ? null : st.dTtfcP50 <= 1,
    );
  return goals;
}

/**
 * RSS samples of the soak. RSS moves in a sawtooth with the old-generation collections, so
 * "flat" compares averages, not single samples: the mean of the last third of the samples
 * against the mean of the first third, both after the first 10 % of the soak (pools and JIT
 * caches still growing).
 */
function soakSummary(samples, seconds) {
  const settled = samples.filter((s) => s.t >= seconds * 0.1);
  const mb = settled.map((s) => s.rssBytes / 1048576);
  const third = Math.max(1, Math.floor(mb.length / 3));
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const first = mb.length ? mean(mb.slice(0, third)) : null;
  const last = mb.length ? mean(mb.slice(-third)) : null;
  return {
    seconds,
    samples: samples.map((s) => ({ t: Math.round(s.t), rssMB: Math.round(s.rssBytes / 1048576) })),
    firstMB: first,
    lastMB: last,
    maxMB: mb.length ? Math.max(...mb) : null,
    drift: first ? (last - first) / first : 0,
  };
}

function goalsTable(goals) {
  return markdownTable(
    [{ title: 'goal (issue 10)' }, { title: 'measured', align: 'right' }, { title: 'met' }],
    goals.map((g) => [g.goal, g.measured, g.ok == null ? 'n/a' : g.ok ? 'yes' : '**no**']),
  );
}

/** Warnings for rows measured while the machine was busy or that varied between rounds. */
function warnings(results, settings) {
  const out = [];
  for (const { scenario, rows } of results) {
    for (const r of rows) {
      const where = `${scenario.id} / ${r.target}`;
      if (r.otherMax != null && r.otherMax > settings.otherCpuWarn) {
        out.push(
          `${where}: processes outside the bench used up to ${r.otherMax.toFixed(0)} % of a core`,
        );
      }
      if (r.stealMax != null && r.stealMax > settings.stealWarn) {
        out.push(`${where}: up to ${r.stealMax.toFixed(0)} % CPU steal by the hypervisor`);
      }
      if (r.rounds.length > 1 && r.spread > settings.noisySpread) {
        out.push(`${where}: rounds differ by ${(100 * r.spread).toFixed(0)} % in req/s (noisy)`);
      }
      if (r.samples === 0) out.push(`${where}: no successful responses`);
    }
  }
  return out;
}

module.exports = {
  newAggregate,
  addRun,
  buildRows,
  scenarioTable,
  checkGoals,
  soakSummary,
  goalsTable,
  warnings,
};
