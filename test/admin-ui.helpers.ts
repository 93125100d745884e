import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, rmSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..');

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { uiBuildIsStale } = require('../admin-ui/build-state.js') as { uiBuildIsStale(): boolean };

const BUILD_LOCK = path.join(ROOT, 'dist', '.admin-ui-build.lock');
const LOCK_WAIT_MS = 180_000;

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Builds dist/admin-ui when it is missing or older than admin-ui/ (what `npm start` does too).
 * Jest workers running both console suites at once take turns: one builds, the other waits.
 */
export function ensureUiBuilt(): void {
  if (!uiBuildIsStale()) return;
  mkdirSync(path.dirname(BUILD_LOCK), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      closeSync(openSync(BUILD_LOCK, 'wx'));
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`${BUILD_LOCK} held for too long; remove it`);
      sleep(250);
    }
  }
  try {
    if (uiBuildIsStale())
      execFileSync('npm', ['run', '--silent', 'build:ui'], { cwd: ROOT, stdio: 'inherit' });
  } finally {
    rmSync(BUILD_LOCK, { force: true });
  }
}

const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

/**
 * Debian's chromium (.ci/apt-packages installs it). Under CI=true a missing browser fails the
 * suite; elsewhere the browser tests skip, loudly.
 */
export function chromiumOrSkip(): string | undefined {
  const found = CHROMIUM_CANDIDATES.find((p) => existsSync(p));
  if (found) return found;
  const message =
    'chromium not found (Debian package "chromium"; .ci/run installs it from .ci/apt-packages)';
  if (process.env.CI === 'true') throw new Error(`${message} — refused under CI=true`);
  process.stderr.write(`\n[SKIPPED] ${message}: the admin console browser tests did NOT run\n\n`);
  return undefined;
}

/** Flags for a quiet, sandbox-free headless run that never calls home. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--no-first-run',
  '--no-default-browser-check',
  '--metrics-recording-only',
  '--password-store=basic',
];
