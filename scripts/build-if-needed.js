#!/usr/bin/env node
// `npm start` builds first when dist/ is missing or older than any source file.
const { execSync } = require('node:child_process');
const { existsSync, statSync, readdirSync } = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const marker = path.join(root, 'dist', 'apps', 'gateway', 'src', 'main.js');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules') continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(full));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(full).mtimeMs);
  }
  return newest;
}

const sources = ['apps', 'libs', 'migrations'].map((d) => path.join(root, d)).filter(existsSync);
const stale = !existsSync(marker) || Math.max(...sources.map(newestSource)) > statSync(marker).mtimeMs;

// The admin console (admin-ui/ → dist/admin-ui) is rebuilt on its own when only it changed.
const uiSources = path.join(root, 'admin-ui', 'build-state.js');
const uiStale = existsSync(uiSources) && require(uiSources).uiBuildIsStale();

if (stale) {
  process.stderr.write('building Switchyard (dist/ is missing or stale)...\n');
  execSync('npm run build', { cwd: root, stdio: 'inherit' });
} else if (uiStale) {
  process.stderr.write('building the admin console (dist/admin-ui is missing or stale)...\n');
  execSync('npm run build:ui', { cwd: root, stdio: 'inherit' });
}
