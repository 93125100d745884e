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

/** Ticks of every process whose name is in `names` (Postgres backends, redis-server). */
function ticksByName(names, table = processTable()) {
  let ticks = 0;
  for (const row of table) if (names.includes(row.comm)) ticks += row.ticks;
  return ticks;
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
  processTable,
  treeUsage,
  ticksByName,
  machineTicks,
  selfTicks,
  parseStat,
};
