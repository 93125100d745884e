import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startGateway, TestGateway } from './support/gateway';
import {
  alertRules,
  dashboardTargets,
  expandGrafanaVariables,
  findTool,
  repoFile,
  requireToolOrSkip,
  ROOT,
} from './monitoring.helpers';

/**
 * A real Prometheus (scrape and rule evaluation every second) scrapes a real gateway under a
 * little traffic. Every dashboard query and every alert expression must evaluate without error;
 * the panels built on foundation metrics must return data. The suite reads the dashboards and
 * alerts files, so whatever panels and rules exist are covered.
 */

/** Panels whose metrics every running gateway exports: they must show data. */
const KEY_PANELS: { dashboard: string; panel: string }[] = [
  { dashboard: 'switchyard-overview', panel: 'Replicas up' },
  { dashboard: 'switchyard-overview', panel: 'Request rate' },
  { dashboard: 'switchyard-overview', panel: 'Requests by status' },
  { dashboard: 'switchyard-overview', panel: 'Requests by route' },
  { dashboard: 'switchyard-overview', panel: 'Errors by route and status' },
  { dashboard: 'switchyard-overview', panel: 'Latency percentiles' },
  { dashboard: 'switchyard-overview', panel: 'p95 latency by route' },
  { dashboard: 'switchyard-overview', panel: 'CPU usage' },
  { dashboard: 'switchyard-overview', panel: 'Resident memory' },
  { dashboard: 'switchyard-overview', panel: 'Heap used' },
  { dashboard: 'switchyard-overview', panel: 'Event loop lag p99' },
  { dashboard: 'switchyard-resilience', panel: 'Redis connected / fallback active' },
  { dashboard: 'switchyard-resilience', panel: 'DB pool connections' },
  { dashboard: 'switchyard-resilience', panel: 'DB pool usage' },
];

interface QueryResult {
  status: 'success' | 'error';
  error?: string;
  data?: {
    resultType: string;
    result: { metric: Record<string, string>; value: [number, string] }[];
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitFor<T>(
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

const prometheusBin = findTool('prometheus');
const promtoolBin = requireToolOrSkip('promtool', 'prometheus');
const available = Boolean(prometheusBin && promtoolBin);
if (!prometheusBin) requireToolOrSkip('prometheus', 'prometheus');

(available ? describe : describe.skip)('dashboards and alerts against a live Prometheus', () => {
  let gw: TestGateway;
  let prom: ChildProcess | undefined;
  let promUrl = '';
  let dir = '';
  let traffic: NodeJS.Timeout | undefined;
  let promLog = '';

  async function query(expr: string): Promise<QueryResult> {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as QueryResult;
  }

  beforeAll(async () => {
    gw = await startGateway();
    const send = () => {
      for (const [method, route] of [
        ['GET', '/health'],
        ['GET', '/health/ready'],
        ['GET', '/v1/models'],
        ['GET', '/v1/does-not-exist'],
        ['POST', '/v1/chat/completions'],
      ])
        void fetch(`${gw.url}${route}`, {
          method,
          headers: { 'content-type': 'application/json' },
          body: method === 'POST' ? '{}' : undefined,
        }).catch(() => undefined);
    };
    send();
    traffic = setInterval(send, 200);

    dir = mkdtempSync(path.join(tmpdir(), 'sy-prom-'));
    copyFileSync(path.join(ROOT, 'monitoring/prometheus/alerts.yml'), path.join(dir, 'alerts.yml'));
    const gatewayHost = new URL(gw.url).host;
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      [
        'global:',
        '  scrape_interval: 1s',
        '  evaluation_interval: 1s',
        'rule_files: [alerts.yml]',
        'scrape_configs:',
        '  - job_name: switchyard',
        '    static_configs:',
        `      - targets: ['${gatewayHost}']`,
        '',
      ].join('\n'),
    );
    const check = spawnSync(promtoolBin as string, ['check', 'config', 'prometheus.yml'], {
      cwd: dir,
      encoding: 'utf8',
    });
    if (check.status !== 0) throw new Error(check.stdout + check.stderr);

    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(
      prometheusBin as string,
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prom.stdout?.on('data', (chunk) => (promLog += chunk));
    prom.stderr?.on('data', (chunk) => (promLog += chunk));
    await waitFor('Prometheus ready', async () =>
      (await fetch(`${promUrl}/-/ready`)).ok ? true : undefined,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${promLog}`);
    });
    // Enough samples for rate() and a few rule evaluations.
    await waitFor('5 s of scrapes of the gateway', async () => {
      const r = await query(
        'count_over_time(up{job="switchyard"}[1m]) >= 5 and up{job="switchyard"} == 1',
      );
      return r.data && r.data.result.length > 0 ? true : undefined;
    });
  }, 90_000);

  afterAll(async () => {
    if (traffic) clearInterval(traffic);
    if (prom && prom.exitCode === null) {
      const exited = new Promise((resolve) => prom?.once('exit', resolve));
      prom.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (prom.exitCode === null) prom.kill('SIGKILL');
    }
    await gw?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('evaluates every dashboard panel query without error', async () => {
    const failures: string[] = [];
    for (const target of dashboardTargets()) {
      const result = await query(expandGrafanaVariables(target.expr));
      if (result.status !== 'success')
        failures.push(`${target.dashboard} / ${target.panel}: ${result.error} — ${target.expr}`);
    }
    expect(failures).toEqual([]);
  });

  it('returns data for the panels built on foundation metrics', async () => {
    const targets = dashboardTargets();
    const empty: string[] = [];
    for (const key of KEY_PANELS) {
      const panelTargets = targets.filter(
        (t) => t.dashboard === key.dashboard && t.panel === key.panel,
      );
      if (panelTargets.length === 0) {
        empty.push(`${key.dashboard} / ${key.panel}: panel not found`);
        continue;
      }
      for (const target of panelTargets) {
        const result = await query(expandGrafanaVariables(target.expr));
        const values = (result.data?.result ?? []).filter((s) => s.value[1] !== 'NaN');
        if (values.length === 0) empty.push(`${key.dashboard} / ${key.panel}: ${target.expr}`);
      }
    }
    expect(empty).toEqual([]);
  });

  it('finds the gateway for the dashboards’ instance variable', async () => {
    const res = await fetch(
      `${promUrl}/api/v1/label/instance/values?match[]=${encodeURIComponent('up{job="switchyard"}')}`,
    );
    const body = (await res.json()) as { data: string[] };
    expect(body.data).toContain(new URL(gw.url).host);
  });

  it('evaluates every alert expression without error, and loads every rule healthy', async () => {
    const failures: string[] = [];
    for (const rule of alertRules()) {
      const result = await query(rule.expr);
      if (result.status !== 'success') failures.push(`${rule.alert}: ${result.error}`);
    }
    expect(failures).toEqual([]);

    const rules = await waitFor('every rule evaluated at least once', async () => {
      const res = await fetch(`${promUrl}/api/v1/rules?type=alert`);
      const body = (await res.json()) as {
        data: {
          groups: {
            rules: { name: string; health: string; lastError?: string; lastEvaluation: string }[];
          }[];
        };
      };
      const all = body.data.groups.flatMap((g) => g.rules);
      return all.every((r) => !r.lastEvaluation.startsWith('0001')) ? all : undefined;
    });
    expect(rules.length).toBe(alertRules().length);
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.lastError}`)).toEqual(
      [],
    );
  });

  it('keeps the availability alerts quiet for a healthy gateway', async () => {
    for (const name of ['APIDown', 'DatabaseDown', 'RedisDown']) {
      const expr = alertRules().find((r) => r.alert === name)?.expr as string;
      const result = await query(expr);
      expect({ name, result: result.data?.result }).toEqual({ name, result: [] });
    }
    const active = await query('ALERTS{alertname=~"APIDown|DatabaseDown|RedisDown"}');
    expect(active.data?.result).toEqual([]);
  });

  it('runs the runbook’s Prometheus queries successfully', async () => {
    const lines = repoFile('docs/runbook.md')
      .split('\n')
      .filter((line) => line.startsWith('curl -s "$PROM/api/v1/query"'));
    expect(lines.length).toBeGreaterThan(5);
    const failures: string[] = [];
    for (const line of lines) {
      const result = spawnSync('bash', ['-o', 'pipefail', '-c', line], {
        env: { ...process.env, PROM: promUrl },
        encoding: 'utf8',
        timeout: 15_000,
      });
      if (result.status !== 0) failures.push(`${line}\n  ${result.stderr}`);
    }
    expect(failures).toEqual([]);
  });

  it('turns APIDown pending once the gateway stops answering scrapes', async () => {
    if (traffic) clearInterval(traffic);
    traffic = undefined;
    await gw.close();
    const pending = await waitFor('APIDown pending', async () => {
      const result = await query('ALERTS{alertname="APIDown", alertstate="pending"}');
      return result.data && result.data.result.length > 0 ? result.data.result : undefined;
    });
    expect(pending[0].metric).toMatchObject({ severity: 'critical', job: 'switchyard' });
  });
});
