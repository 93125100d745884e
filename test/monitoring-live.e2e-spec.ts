import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startGateway, TestGateway } from './support/gateway';
import {
  alertRules,
  dashboardTargets,
  expandGrafanaVariables,
  findTool,
  freePort,
  repoFile,
  requireToolOrSkip,
  ROOT,
  waitFor,
} from './monitoring.helpers';

/**
 * A real Prometheus (scrape and rule evaluation every second) scrapes a real gateway under a
 * little traffic. Every dashboard query and every alert expression must evaluate without error;
 * the panels built on foundation metrics must return data. The suite reads the dashboards and
 * alerts files, so whatever panels and rules exist are covered.
 */

/**
 * Panels that must show data under this test's traffic (requests with and without a key, a
 * cacheable chat completion repeated past the key's per-minute limit, one async job). Panels that
 * need events the traffic does not cause (5xx, breaker transitions, session pools, credit
 * failures) only have to evaluate.
 */
const KEY_PANELS: Record<string, string[]> = {
  'switchyard-overview': [
    'Replicas up',
    'Request rate',
    'p95 latency',
    'Cache hit rate',
    'Requests by status',
    'Requests by route',
    'Errors by route and status',
    'Latency percentiles',
    'p95 latency by route',
    'Cache lookups by result',
    'Rate-limit rejections by scope',
    'Authentication failures by reason',
    'CPU usage',
    'Resident memory',
    'Heap used',
    'Event loop lag p99',
  ],
  'switchyard-resilience': [
    'Breaker state',
    'Upstream requests by outcome',
    'Upstream p95 latency by provider',
    'Generation queue depth',
    'Redis connected / fallback active',
    'DB pool connections',
    'DB pool usage',
    'DB query p95 by operation',
    'DB queries per second',
  ],
  'switchyard-business': [
    'Credits spent in range',
    'Credits spent per minute',
    'Top models (requests in range)',
    'Requests per provider',
    'Jobs by type and outcome',
    'Jobs waiting and running',
    'Jobs finished in range',
    'Cached responses served in range',
  ],
};

interface QueryResult {
  status: 'success' | 'error';
  error?: string;
  data?: {
    resultType: string;
    result: { metric: Record<string, string>; value: [number, string] }[];
  };
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

  /** Key panels (dashboard / title: expr) whose queries return nothing or only NaN. */
  async function emptyKeyPanels(): Promise<string[]> {
    const targets = dashboardTargets();
    const empty: string[] = [];
    for (const [dashboard, panels] of Object.entries(KEY_PANELS))
      for (const panel of panels) {
        const panelTargets = targets.filter((t) => t.dashboard === dashboard && t.panel === panel);
        if (panelTargets.length === 0) empty.push(`${dashboard} / ${panel}: panel not found`);
        for (const target of panelTargets) {
          const result = await query(expandGrafanaVariables(target.expr));
          if (!(result.data?.result ?? []).some((s) => s.value[1] !== 'NaN'))
            empty.push(`${dashboard} / ${panel}: ${target.expr}`);
        }
      }
    return empty;
  }

  beforeAll(async () => {
    const key = `sk-sy-monitoring${randomBytes(12).toString('hex')}`;
    // 100 keyed requests a minute: the traffic below (15/s) goes past it after several scrapes,
    // so both served requests and 429s are seen.
    gw = await startGateway({ env: { API_KEYS: key, RATE_LIMIT_PER_MINUTE: '100' } });

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
    // Traffic starts once Prometheus has scraped the idle gateway, so every counter is seen
    // rising (rate() needs two samples of a series).
    await waitFor('the first scrape of the gateway', async () => {
      const r = await query('up{job="switchyard"} == 1');
      return r.data && r.data.result.length > 0 ? true : undefined;
    });

    const withKey = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const chatBody = (content: string) =>
      JSON.stringify({
        model: 'mock-gpt',
        temperature: 0, // deterministic, so cacheable
        messages: [{ role: 'user', content }],
      });
    const chat = chatBody('monitoring test'); // repeated: cache hits after the first
    let tick = 0;
    const send = () => {
      tick += 1;
      const requests: [string, RequestInit][] = [
        ['/health', {}],
        ['/health/ready', {}],
        ['/v1/does-not-exist', {}],
        ['/v1/models', {}], // no key: an authentication failure
        ['/v1/models', { headers: withKey }],
        ['/v1/chat/completions', { method: 'POST', headers: withKey, body: chat }],
        // a new prompt each time: a cache miss, so an upstream call
        ['/v1/chat/completions', { method: 'POST', headers: withKey, body: chatBody(`n${tick}`) }],
      ];
      for (const [route, init] of requests)
        void fetch(`${gw.url}${route}`, init).catch(() => undefined);
    };
    send();
    traffic = setInterval(send, 200);
    const job = await fetch(`${gw.url}/v1/generations`, {
      method: 'POST',
      headers: withKey,
      body: JSON.stringify({ type: 'chat', request: JSON.parse(chat) }),
    });
    expect(job.status).toBe(202);

    // Until every key panel shows data (or the wait times out and the test below names them).
    await waitFor(
      'data in every key panel',
      async () => ((await emptyKeyPanels()).length === 0 ? true : undefined),
      45_000,
    ).catch(() => undefined);
  }, 120_000);

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

  it('returns data in the key panels of each dashboard', async () => {
    expect(await emptyKeyPanels()).toEqual([]);
  });

  it('counts the finished job once in "Jobs finished in range"', async () => {
    // The job of beforeAll, once it has succeeded and been scraped.
    await waitFor('the succeeded job scraped', async () => {
      const result = await query(
        'sum(increase(gateway_generation_jobs_total{job="switchyard", outcome="succeeded"}[5m])) > 0.9',
      );
      return result.data?.result.length ? true : undefined;
    });
    const [panel] = dashboardTargets().filter(
      (t) => t.dashboard === 'switchyard-business' && t.panel === 'Jobs finished in range',
    );
    const result = await query(expandGrafanaVariables(panel.expr));
    // One job was submitted and finished: one, not two (submitted + succeeded).
    expect(Math.round(Number(result.data?.result[0]?.value[1]))).toBe(1);
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
