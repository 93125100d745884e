import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { BrowserContext, chromium, Page } from 'playwright-core';

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

export interface ConsoleBrowser {
  context: BrowserContext;
  page: Page;
  /** Closes the browser and deletes its profile. */
  close(): Promise<void>;
}

/**
 * Chromium on a fresh profile, as every console test sees it: 1280×860, en-GB, UTC, light. Script
 * errors and console errors go to `problems`, except Chromium's "Failed to load resource" for a
 * refused API call, which the tests cause on purpose.
 */
export async function openConsoleBrowser(
  executablePath: string,
  problems: string[],
): Promise<ConsoleBrowser> {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'sy-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    colorScheme: 'light',
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource'))
      problems.push(`console: ${msg.text()}`);
  });
  return {
    context,
    page,
    close: async () => {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
