'use strict';
// Starting, pinning and stopping the benchmark's server processes. Every server runs in
// its own process group (detached) so that stopping it also stops anything it forked.
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const { spawn, spawnSync } = require('node:child_process');

const started = [];

function hasTaskset() {
  return spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
}

/**
 * Decides the CPU layout: load generator on one core, servers on another, when the machine
 * has two or more cores and taskset exists; otherwise no pinning.
 */
function cpuLayout({ pin, loadgenCpu, serverCpu }) {
  const cpus = os.cpus().length;
  if (!pin) return { pinned: false, reason: 'PIN=0' };
  if (!hasTaskset()) return { pinned: false, reason: 'taskset not found' };
  if (Math.max(loadgenCpu, serverCpu) >= cpus) {
    return { pinned: false, reason: `CPU ${Math.max(loadgenCpu, serverCpu)} does not exist` };
  }
  return { pinned: true, loadgenCpu, serverCpu };
}

/** Moves this process (all its threads) to one CPU. */
function pinSelf(cpu) {
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], {
    stdio: 'ignore',
  });
  return r.status === 0;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function portOpen(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.once('connect', () => {
      sock.destroy();
      resolve(true);
    });
    sock.once('error', () => resolve(false));
  });
}

function tail(file, lines = 30) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Starts a server. `cpu` pins it with taskset (taskset execs the command, so the PID is the
 * server's own). stdout and stderr go to `logFile`.
 */
function startServer({ name, command, args, env, cpu, logFile }) {
  const fd = fs.openSync(logFile, 'a');
  const [cmd, argv] =
    cpu == null ? [command, args] : ['taskset', ['-c', String(cpu), command, ...args]];
  const child = spawn(cmd, argv, {
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, fd],
    detached: true,
  });
  fs.closeSync(fd);
  const server = { name, pid: child.pid, child, logFile, exited: false, exitCode: null };
  child.on('exit', (code, signal) => {
    server.exited = true;
    server.exitCode = code ?? signal;
  });
  started.push(server);
  return server;
}

/** Waits until the server's port accepts connections; fails fast when it exits. */
async function waitForPort(server, port, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.exited) {
      throw new Error(
        `${server.name} exited (${server.exitCode}) during start-up; log ${server.logFile}:\n${tail(server.logFile)}`,
      );
    }
    if (await portOpen(port)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(
    `${server.name} did not open port ${port} within ${timeoutMs / 1000}s; log ${server.logFile}:\n${tail(server.logFile)}`,
  );
}

function groupAlive(pid) {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM to the server's group, then SIGKILL after `graceMs`. */
async function stopServer(server, graceMs = 10_000) {
  if (!groupAlive(server.pid)) return;
  try {
    process.kill(-server.pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && groupAlive(server.pid)) {
    await new Promise((r) => setTimeout(r, 50));
  }
  if (groupAlive(server.pid)) {
    process.stderr.write(`stopping ${server.name} (pid ${server.pid}) with SIGKILL\n`);
    try {
      process.kill(-server.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Stops every server started here, newest first. */
async function stopAll() {
  while (started.length) await stopServer(started.pop());
}

/** Last resort on a hard exit: SIGKILL whatever is left, synchronously. */
function killAllSync() {
  for (const s of started) {
    try {
      process.kill(-s.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

module.exports = {
  cpuLayout,
  pinSelf,
  freePort,
  startServer,
  waitForPort,
  stopServer,
  stopAll,
  killAllSync,
  tail,
};
