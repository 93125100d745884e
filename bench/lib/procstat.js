'use strict';
// CPU and memory accounting from /proc (Linux). CPU is counted in clock ticks
// (user + system); a server's figure includes all of its descendants.
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');

const PAGE_BYTES = 4096;
let clockTicks = 100;
try {
  clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // getconf missing: 100 is the Linux default
}

function parseStat(text) {
  const close = text.lastIndexOf(')');
  const comm = text.slice(text.indexOf('(') + 1, close);
  const f = text.slice(close + 2).split(' '); // f[0] is field 3 (state)
  return {
    comm,
    ppid: Number(f[1]),
    ticks: Number(f[11]) + Number(f[12]),
    rssBytes: Number(f[21]) * PAGE_BYTES,
  };
}

/** CPU time (user + system) one process has used so far, in µs. */
function processCpuUs(pid) {
  return (parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')).ticks * 1e6) / clockTicks;
}

/** Every process visible in /proc: { pid, ppid, comm, ticks, rssBytes }. */
function processTable() {
  const rows = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      rows.push({ pid: Number(name), ...parseStat(fs.readFileSync(`/proc/${name}/stat`, 'utf8')) });
    } catch {
      // the process ended while we listed it
    }
  }
  return rows;
}

/** CPU ticks and RSS of a process and all its descendants; null when it is gone. */
function treeUsage(rootPid, table = processTable()) {
  if (!rootPid) return null;
  const children = new Map();
  for (const row of table) {
    if (!children.has(row.ppid)) children.set(row.ppid, []);
    children.get(row.ppid).push(row);
  }
  const root = table.find((r) => r.pid === Number(rootPid));
  if (!root) return null;
  let ticks = 0;
  let rssBytes = 0;
  const stack = [root];
  while (stack.length) {
    const row = stack.pop();
    ticks += row.ticks;
    rssBytes += row.rssBytes;
    for (const kid of children.get(row.pid) ?? []) stack.push(kid);
  }
  return { ticks, rssBytes };
}

function cmdline(pid) {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/**
 * CPU ticks, per PID, of the data stores serving the bench's databases: redis-server, the Postgres
 * server's own processes (postmaster, WAL writer, checkpointer...) and the backends connected
 * to one of `databases`. Backends and autovacuum workers of other databases (other test runs on the
 * same server) are left out; Postgres shows the database in each backend's process title.
 */
function dataStoreTicks(databases, table = processTable()) {
  const ticks = new Map();
  for (const row of table) {
    if (row.comm === 'redis-server') {
      ticks.set(row.pid, row.ticks);
      continue;
    }
    if (row.comm !== 'postgres') continue;
    const title = cmdline(row.pid);
    const servesADatabase = title.includes('(') || title.includes('autovacuum worker');
    if (!servesADatabase || databases.some((db) => title.includes(` ${db} `))) {
      ticks.set(row.pid, row.ticks);
    }
  }
  return ticks;
}

/**
 * Ticks used between two dataStoreTicks() snapshots. Processes that started in between count
 * whole; processes that ended are lost (never negative).
 */
function ticksBetween(before, after) {
  let sum = 0;
  for (const [pid, t] of after) sum += Math.max(0, t - (before.get(pid) ?? 0));
  return sum;
}

/** read/write system calls made so far by one process (/proc/<pid>/io), or null. */
function syscalls(pid) {
  if (!pid) return null;
  try {
    const io = fs.readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name) => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(io)?.[1] ?? NaN);
    return { reads: field('syscr'), writes: field('syscw') };
  } catch {
    return null;
  }
}

/** Machine-wide busy (user + nice + system) and steal ticks from /proc/stat. */
function machineTicks() {
  const cpu = fs
    .readFileSync('/proc/stat', 'utf8')
    .split('\n', 1)[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return { busy: cpu[0] + cpu[1] + cpu[2], steal: cpu[7] || 0 };
}

/** This process's own CPU ticks (the load generator). */
function selfTicks() {
  return parseStat(fs.readFileSync('/proc/self/stat', 'utf8')).ticks;
}

module.exports = {
  clockTicks,
  processCpuUs,
  processTable,
  treeUsage,
  dataStoreTicks,
  ticksBetween,
  machineTicks,
  selfTicks,
  syscalls,
  parseStat,
};
