#!/usr/bin/env node
'use strict';
// Reads a V8 .cpuprofile (node --cpu-prof) and prints where the time went: the top
// functions by self time, and self time grouped by package (node_modules/<pkg>, our
// libs/<name>, node internals, GC, idle).
//
//   node bench/profile.js <file.cpuprofile> [top N] [skip first ms]
const fs = require('node:fs');

/** Where a frame's code lives, for grouping. */
function packageOf(url, functionName) {
  if (!url) {
    if (functionName === '(garbage collector)') return '(gc)';
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(program)') return '(program: native, not attributed)';
    return '(native)';
  }
  const nm = url.lastIndexOf('node_modules/');
  if (nm !== -1) {
    const rest = url.slice(nm + 'node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.startsWith('node:')) return 'node:internal';
  const ours = /\/(libs|apps)\/([^/]+)\//.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`;
  return url.replace(/^file:\/\//, '');
}

/**
 * Self time in µs per frame and per package. `skipMs` leaves out the first milliseconds of
 * the profile (start-up: module loading, Nest wiring) so only the load is counted.
 */
function analyze(profile, skipMs = 0) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  const { samples, timeDeltas } = profile;
  let at = 0;
  for (let i = 0; i < samples.length; i++) {
    // timeDeltas[i] is the time since the previous sample; it is charged to sample i.
    const delta = timeDeltas[i] ?? 0;
    at += delta;
    if (at < skipMs * 1000) continue;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + delta);
  }
  const frames = new Map();
  const packages = new Map();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const { callFrame } = byId.get(id);
    const pkg = packageOf(callFrame.url, callFrame.functionName);
    if (pkg === '(idle)') {
      idleUs += us;
      continue;
    }
    totalUs += us;
    const name = callFrame.functionName || '(anonymous)';
    const where = callFrame.url
      ? `${callFrame.url.replace(/^.*?(node_modules\/|dist\/|node:)/, '$1')}:${callFrame.lineNumber + 1}`
      : '';
    const key = `${name} ${where}`;
    frames.set(key, (frames.get(key) ?? 0) + us);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
  }
  const sorted = (m) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return {
    totalUs,
    idleUs,
    frames: sorted(frames),
    packages: sorted(packages),
    ours: sorted(inclusiveOfOurs(profile, selfUs, byId)),
  };
}

/**
 * Inclusive time (the function and everything it called) of our own functions (dist/libs,
 * dist/apps): which step of the pipeline the self time above belongs to. A function that
 * appears several times on one stack is counted once.
 */
function inclusiveOfOurs(profile, selfUs, byId) {
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const totals = new Map();
  for (const [id, us] of selfUs) {
    if (packageOf(byId.get(id).callFrame.url, byId.get(id).callFrame.functionName) === '(idle)') {
      continue;
    }
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const { functionName, url, lineNumber } = byId.get(cur).callFrame;
      if (!/\/(libs|apps)\//.test(url) || url.includes('node_modules')) continue;
      const key = `${functionName || '(anonymous)'} ${url.replace(/^.*?dist\//, '')}:${lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      totals.set(key, (totals.get(key) ?? 0) + us);
    }
  }
  return totals;
}

function summarizeProfile(file, top = 25, skipMs = 0) {
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const a = analyze(profile, skipMs);
  const pct = (us) => `${((100 * us) / a.totalUs).toFixed(1).padStart(5)} %`;
  const lines = [];
  lines.push(`busy ${(a.totalUs / 1000).toFixed(0)} ms, idle ${(a.idleUs / 1000).toFixed(0)} ms`);
  lines.push('');
  lines.push('self time by package:');
  for (const [pkg, us] of a.packages.slice(0, 20)) lines.push(`  ${pct(us)}  ${pkg}`);
  lines.push('');
  lines.push(`top ${top} functions by self time:`);
  for (const [frame, us] of a.frames.slice(0, top)) lines.push(`  ${pct(us)}  ${frame}`);
  lines.push('');
  lines.push(`top ${top} of our functions by inclusive time (with everything they call):`);
  for (const [frame, us] of a.ours.slice(0, top)) lines.push(`  ${pct(us)}  ${frame}`);
  return lines.join('\n');
}

module.exports = { analyze, summarizeProfile, packageOf };

if (require.main === module) {
  const [file, top, skip] = process.argv.slice(2);
  if (!file) {
    process.stderr.write(
      'usage: node bench/profile.js <file.cpuprofile> [top N] [skip first ms]\n',
    );
    process.exit(2);
  }
  process.stdout.write(`${summarizeProfile(file, Number(top) || 25, Number(skip) || 0)}\n`);
}
