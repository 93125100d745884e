import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import path from 'node:path';
import { load } from 'js-yaml';

/** Shared by the monitoring, runbook and deployment suites (not a test file itself). */

export const ROOT = path.resolve(__dirname, '..');
export const CI = process.env.CI === 'true';

export function repoFile(relative: string): string {
  return readFileSync(path.join(ROOT, relative), 'utf8');
}

export function loadYamlFile<T = unknown>(relative: string): T {
  return load(repoFile(relative)) as T;
}

/** The metric names of DESIGN §7 (the contract dashboards and alerts may use). */
export const CONTRACT_METRICS = [
  'http_requests_total',
  'http_request_duration_seconds',
  'gateway_upstream_requests_total',
  'gateway_upstream_duration_seconds',
  'gateway_auth_failures_total',
  'gateway_rate_limit_rejections_total',
  'gateway_cache_requests_total',
  'gateway_circuit_breaker_state',
  'gateway_circuit_breaker_transitions_total',
  'gateway_active_sessions',
  'gateway_session_rotations_total',
  'gateway_credits_spent_total',
  'gateway_credit_failures_total',
  'gateway_generation_queue_depth',
  'gateway_generation_jobs_total',
  'gateway_db_query_duration_seconds',
  'gateway_db_pool_connections',
  // Not in DESIGN §7's list: added so DatabaseDown reads the probe rather than pool size.
  'gateway_db_up',
  'gateway_redis_up',
  'gateway_redis_fallback_active',
];

/** Alerts DESIGN §7 requires in alerts.yml. */
export const CONTRACT_ALERTS = [
  'APIDown',
  'DatabaseDown',
  'RedisDown',
  'HighErrorRate',
  'HighLatencyP95',
  'HighAuthFailures',
  'LowCacheHitRate',
  'HighRateLimitViolations',
  'LLMProviderSlowdown',
  'NoHealthySessions',
  'SessionRotationStalled',
  'HighDatabaseLatency',
  'DBPoolSaturation',
  'CircuitBreakerOpen',
  'QueueBacklog',
  'CreditFailures',
];

/** Metric families Switchyard exports besides the contract ones (prom-client defaults). */
const DEFAULT_METRIC_PREFIXES = ['process_', 'nodejs_'];

/**
 * Metric names a PromQL expression reads: identifiers of our families (http_, gateway_, process_,
 * nodejs_) with histogram suffixes folded to the family name, plus `up`.
 */
export function metricNamesIn(expr: string): string[] {
  const names = new Set<string>();
  for (const match of expr.matchAll(/\b((?:http|gateway|process|nodejs)_[a-z0-9_]+)/g)) {
    names.add(match[1].replace(/_(bucket|count|sum)$/, ''));
  }
  if (/\bup\s*\{/.test(expr)) names.add('up');
  return [...names];
}

/** True when `name` is a contract metric, a Node default metric, or Prometheus' own `up`. */
export function isKnownMetric(name: string): boolean {
  return (
    name === 'up' ||
    CONTRACT_METRICS.includes(name) ||
    DEFAULT_METRIC_PREFIXES.some((prefix) => name.startsWith(prefix))
  );
}

/**
 * Where an external tool is: PATH, then the Debian locations. Under CI=true a missing tool is a
 * failure (.ci/run installs it); elsewhere the caller skips loudly.
 */
export function findTool(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/local/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function requireToolOrSkip(name: string, debianPackage: string): string | undefined {
  const found = findTool(name);
  if (found) return found;
  const message = `${name} not found (Debian package "${debianPackage}"; .ci/run installs it)`;
  if (CI) throw new Error(`${message} — refused under CI=true`);
  process.stderr.write(`\n[SKIPPED] ${message}: these monitoring tests did NOT run\n\n`);
  return undefined;
}

export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    input: options.input,
    encoding: 'utf8',
    timeout: 120_000,
  });
  return {
    status: result.status,
    stdout: result.stdout ?? '',
    stderr: (result.stderr ?? '') + (result.error ? String(result.error) : ''),
  };
}

/**
 * Command lines of the fenced blocks (only those tagged `language` when given), continuation
 * lines joined.
 */
export function commandLines(markdown: string, language?: string): string[] {
  const lines: string[] = [];
  let inBlock = false;
  let wanted = true;
  let pending = '';
  for (const raw of markdown.split('\n')) {
    if (/^\s*```/.test(raw)) {
      inBlock = !inBlock;
      wanted = language === undefined || raw.trim().slice(3).trim() === language;
      continue;
    }
    if (!inBlock || !wanted) continue;
    const line = pending + raw;
    if (line.endsWith('\\')) {
      pending = `${line.slice(0, -1)} `;
      continue;
    }
    pending = '';
    if (line.trim()) lines.push(line.trim());
  }
  return lines;
}

/** Drops a trailing `# comment` (outside quotes, preceded by spaces). */
export function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === '#' && /\s/.test(line[i - 1] ?? '')) return line.slice(0, i).trimEnd();
  }
  return line;
}

/**
 * Runs a shell command asynchronously: the gateway under test lives in this process, so a
 * synchronous child (spawnSync) would block the event loop and the gateway could never answer.
 */
export function bash(
  command: string,
  env: Record<string, string>,
  cwd = ROOT,
  timeoutMs = 60_000,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // No pipefail: operators paste these into a default shell, where `… | head` is fine; the
    // callers check the output instead.
    const child = spawn('bash', ['-c', command], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

export { freePort } from './support/free-port';

/** Polls `probe` until it returns a value (errors count as "not yet"). */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to '-', duplicates -1, -2. */
export function markdownAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  let inFence = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*```/.test(line)) inFence = !inFence;
    if (inFence) continue;
    const heading = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!heading) continue;
    const base = heading[1]
      .replace(/`/g, '')
      .toLowerCase()
      .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, '')
      .replace(/ /g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function alertRules(): AlertRule[] {
  const doc = loadYamlFile<{ groups: { name: string; rules: AlertRule[] }[] }>(
    'monitoring/prometheus/alerts.yml',
  );
  return doc.groups.flatMap((group) => group.rules).filter((rule) => rule.alert);
}

export interface DashboardTarget {
  dashboard: string;
  panel: string;
  expr: string;
}

export const DASHBOARD_FILES = ['overview', 'resilience', 'business'].map(
  (name) => `monitoring/grafana/dashboards/${name}.json`,
);

interface Panel {
  title: string;
  type: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

export function dashboardTargets(): DashboardTarget[] {
  const targets: DashboardTarget[] = [];
  for (const file of DASHBOARD_FILES) {
    const dashboard = JSON.parse(repoFile(file)) as { uid: string; panels: Panel[] };
    const visit = (panels: Panel[]) => {
      for (const panel of panels) {
        for (const target of panel.targets ?? [])
          if (target.expr)
            targets.push({ dashboard: dashboard.uid, panel: panel.title, expr: target.expr });
        if (panel.panels) visit(panel.panels);
      }
    };
    visit(dashboard.panels);
  }
  return targets;
}

/** Grafana's variables in a panel query, replaced by what Grafana would send for "All". */
export function expandGrafanaVariables(expr: string, rateInterval = '1m', range = '5m'): string {
  return expr
    .replace(/\$__rate_interval|\$\{__rate_interval\}/g, rateInterval)
    .replace(/\$__interval|\$\{__interval\}/g, '15s')
    .replace(/\$__range|\$\{__range\}/g, range)
    .replace(/\$instance|\$\{instance(?::[a-z]+)?\}/g, '.*');
}
