'use strict';
// The benchmark's peers (autocannon, undici, the Portkey gateway) live outside the repo so
// that Switchyard's own dependencies stay as they are. Installed on first use from the
// pinned bench/peer/package.json and package-lock.json.
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');
const { execFileSync } = require('node:child_process');

const PEER_SOURCE = path.join(__dirname, '..', 'peer');
const REQUIRED = ['autocannon', 'undici', '@portkey-ai/gateway', '@hono/node-server'];

function installedVersion(dir, name) {
  try {
    const file = path.join(dir, 'node_modules', name, 'package.json');
    return JSON.parse(fs.readFileSync(file, 'utf8')).version;
  } catch {
    return null;
  }
}

function pinnedLockMatches(dir) {
  try {
    const want = fs.readFileSync(path.join(PEER_SOURCE, 'package-lock.json'), 'utf8');
    const have = fs.readFileSync(path.join(dir, 'package-lock.json'), 'utf8');
    return want === have;
  } catch {
    return false;
  }
}

/**
 * Makes sure the peers are installed in `dir` (npm ci from the pinned lock file) and returns
 * { require, versions, portkeyServer }.
 */
function ensurePeers(dir, log) {
  const missing = REQUIRED.filter((name) => !installedVersion(dir, name));
  if (missing.length || !pinnedLockMatches(dir)) {
    log(`installing benchmark peers into ${dir} (npm ci; first run only)`);
    fs.mkdirSync(dir, { recursive: true });
    for (const file of ['package.json', 'package-lock.json']) {
      fs.copyFileSync(path.join(PEER_SOURCE, file), path.join(dir, file));
    }
    execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const versions = Object.fromEntries(REQUIRED.map((n) => [n, installedVersion(dir, n)]));
  const absent = REQUIRED.filter((n) => !versions[n]);
  if (absent.length) throw new Error(`benchmark peers missing after install: ${absent.join(', ')}`);
  return {
    require: createRequire(path.join(dir, 'package.json')),
    versions,
    portkeyServer: path.join(dir, 'node_modules/@portkey-ai/gateway/build/start-server.js'),
  };
}

module.exports = { ensurePeers };
