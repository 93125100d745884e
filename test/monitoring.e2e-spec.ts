import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  alertRules,
  CONTRACT_ALERTS,
  dashboardTargets,
  findTool,
  freePort,
  isKnownMetric,
  loadYamlFile,
  markdownAnchors,
  metricNamesIn,
  repoFile,
  requireToolOrSkip,
  run,
  waitFor,
} from './monitoring.helpers';

const ALERTS = 'monitoring/prometheus/alerts.yml';
const ALERT_TESTS = 'monitoring/prometheus/alerts.test.yml';
const RUNBOOK_URL = /^https:\/\/[^#\s]+\/docs\/runbook\.md#([a-z0-9-]+)$/;

interface AlertTestFile {
  rule_files: string[];
  tests: {
    name: string;
    alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
  }[];
}

describe('alert rules: contract, annotations, runbook links', () => {
  const rules = alertRules();

  it('defines every alert of DESIGN §7', () => {
    const names = new Set(rules.map((rule) => rule.alert));
    expect(CONTRACT_ALERTS.filter((name) => !names.has(name))).toEqual([]);
  });

  it('gives each alert a severity, summary, description and a runbook_url into docs/runbook.md', () => {
    const anchors = markdownAnchors(repoFile('docs/runbook.md'));
    const problems: string[] = [];
    for (const rule of rules) {
      const where = `${rule.alert} (${rule.labels?.severity ?? 'no severity'})`;
      if (!['critical', 'warning', 'info'].includes(rule.labels?.severity ?? ''))
        problems.push(`${where}: severity must be critical, warning or info`);
      for (const key of ['summary', 'description', 'runbook_url'])
        if (!rule.annotations?.[key]) problems.push(`${where}: missing annotation ${key}`);
      const link = RUNBOOK_URL.exec(rule.annotations?.runbook_url ?? '');
      if (!link) problems.push(`${where}: runbook_url is not …/docs/runbook.md#anchor`);
      else if (!anchors.has(link[1]))
        problems.push(`${where}: docs/runbook.md has no heading for #${link[1]}`);
    }
    expect(problems).toEqual([]);
  });

  it('keeps every internal link of docs/runbook.md pointing at a heading', () => {
    const runbook = repoFile('docs/runbook.md');
    const anchors = markdownAnchors(runbook);
    const links = [...runbook.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1]);
    expect(links.length).toBeGreaterThan(20);
    expect(links.filter((anchor) => !anchors.has(anchor))).toEqual([]);
  });

  it('reads only DESIGN §7 metric names', () => {
    const unknown = rules.flatMap((rule) =>
      metricNamesIn(rule.expr)
        .filter((name) => !isKnownMetric(name))
        .map((name) => `${rule.alert}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('has promtool cases showing each alert both firing and staying quiet', () => {
    const doc = loadYamlFile<AlertTestFile>(ALERT_TESTS);
    expect(doc.rule_files).toEqual(['alerts.yml']);
    const fires = new Set<string>();
    const quiet = new Set<string>();
    for (const test of doc.tests)
      for (const check of test.alert_rule_test ?? [])
        (check.exp_alerts && check.exp_alerts.length > 0 ? fires : quiet).add(check.alertname);
    const names = [...new Set(rules.map((rule) => rule.alert as string))];
    expect(names.filter((name) => !fires.has(name))).toEqual([]);
    expect(names.filter((name) => !quiet.has(name))).toEqual([]);
  });
});

describe('dashboards: structure and metric names', () => {
  it('provisions the three dashboards with unique uids against the provisioned datasource', () => {
    const datasources = loadYamlFile<{ datasources: { uid: string; type: string }[] }>(
      'monitoring/grafana/provisioning/datasources/prometheus.yml',
    );
    const uid = datasources.datasources.find((d) => d.type === 'prometheus')?.uid;
    expect(uid).toBeTruthy();
    const providers = loadYamlFile<{ providers: { type: string; options: { path: string } }[] }>(
      'monitoring/grafana/provisioning/dashboards/switchyard.yml',
    );
    expect(providers.providers[0]).toMatchObject({ type: 'file' });
    const uids = new Set<string>();
    for (const name of ['overview', 'resilience', 'business']) {
      const dashboard = JSON.parse(repoFile(`monitoring/grafana/dashboards/${name}.json`));
      expect(dashboard.uid).toMatch(/^switchyard-/);
      uids.add(dashboard.uid);
      const datasourceUids = new Set<string>();
      const visit = (panels: { datasource?: { uid: string }; panels?: unknown[] }[]) => {
        for (const panel of panels) {
          if (panel.datasource) datasourceUids.add(panel.datasource.uid);
          if (panel.panels) visit(panel.panels as never);
        }
      };
      visit(dashboard.panels);
      expect([...datasourceUids]).toEqual([uid]);
    }
    expect(uids.size).toBe(3);
  });

  it('queries only DESIGN §7 metrics and Node defaults', () => {
    const targets = dashboardTargets();
    expect(targets.length).toBeGreaterThan(20);
    const unknown = targets.flatMap((t) =>
      metricNamesIn(t.expr)
        .filter((name) => !isKnownMetric(name))
        .map((name) => `${t.dashboard} / ${t.panel}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('covers what the operators asked for on each dashboard', () => {
    const byDashboard = new Map<string, string>();
    for (const t of dashboardTargets())
      byDashboard.set(t.dashboard, `${byDashboard.get(t.dashboard) ?? ''}\n${t.expr}`);
    const expects: Record<string, string[]> = {
      'switchyard-overview': [
        'http_requests_total',
        'http_request_duration_seconds_bucket',
        'gateway_cache_requests_total',
        'gateway_rate_limit_rejections_total',
      ],
      'switchyard-resilience': [
        'gateway_circuit_breaker_state',
        'gateway_active_sessions',
        'gateway_upstream_duration_seconds_bucket',
        'gateway_generation_queue_depth',
        'gateway_redis_fallback_active',
        'gateway_db_pool_connections',
      ],
      'switchyard-business': [
        'gateway_credits_spent_total',
        'gateway_upstream_requests_total',
        'gateway_generation_jobs_total',
      ],
    };
    for (const [uid, metrics] of Object.entries(expects))
      for (const metric of metrics) expect(`${uid}: ${byDashboard.get(uid)}`).toContain(metric);
  });
});

describe('promtool and amtool', () => {
  const promtool = requireToolOrSkip('promtool', 'prometheus');
  const amtool = requireToolOrSkip('amtool', 'prometheus-alertmanager');
  const withPromtool = promtool ? it : it.skip;
  const withAmtool = amtool ? it : it.skip;

  withPromtool('promtool check rules accepts alerts.yml', () => {
    const result = run(promtool as string, ['check', 'rules', ALERTS]);
    expect(result.stderr + result.stdout).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  withPromtool('promtool test rules passes every alert case', () => {
    const result = run(promtool as string, ['test', 'rules', ALERT_TESTS]);
    if (result.status !== 0) throw new Error(result.stdout + result.stderr);
    expect(result.stdout).toContain('SUCCESS');
  });

  withPromtool('the rule tests can fail: a weakened threshold is caught', () => {
    // Guards against a test file that passes whatever the rules say.
    const dir = mkdtempSync(path.join(tmpdir(), 'sy-alerts-'));
    try {
      const weakened = repoFile(ALERTS).replace(/\) > 5\n/, ') > 500\n');
      expect(weakened).not.toEqual(repoFile(ALERTS));
      writeFileSync(path.join(dir, 'alerts.yml'), weakened);
      writeFileSync(path.join(dir, 'alerts.test.yml'), repoFile(ALERT_TESTS));
      const result = run(promtool as string, ['test', 'rules', 'alerts.test.yml'], { cwd: dir });
      expect(result.status).not.toBe(0);
      expect(result.stdout + result.stderr).toContain('HighLatencyP95');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  withPromtool('promtool check config accepts prometheus.yml (with its rule file)', () => {
    const result = run(promtool as string, [
      'check',
      'config',
      'monitoring/prometheus/prometheus.yml',
    ]);
    if (result.status !== 0) throw new Error(result.stdout + result.stderr);
  });

  withAmtool('amtool accepts alertmanager.yml and routes by severity', () => {
    const file = 'monitoring/alertmanager/alertmanager.yml';
    const check = run(amtool as string, ['check-config', file]);
    if (check.status !== 0) throw new Error(check.stdout + check.stderr);
    const route = (severity: string) =>
      run(amtool as string, [
        'config',
        'routes',
        'test',
        `--config.file=${file}`,
        `severity=${severity}`,
        'alertname=HighErrorRate',
      ]).stdout.trim();
    expect(route('critical')).toBe('pager,team-chat');
    expect(route('warning')).toBe('team-chat');
    expect(route('info')).toBe('dashboard-only');
  });
});

/**
 * docs/monitoring.md promises three silencings. A real Alertmanager with the repo's config gets
 * the alerts with the labels the rules give them (the exp_labels of alerts.test.yml, which
 * promtool checks against the rules), and must report each target suppressed by its source:
 * an inhibition whose `equal` labels the real alerts do not both carry silences nothing.
 */
const alertmanagerBin = findTool('prometheus-alertmanager') ?? findTool('alertmanager');
if (!alertmanagerBin) requireToolOrSkip('alertmanager', 'prometheus-alertmanager');

(alertmanagerBin ? describe : describe.skip)('Alertmanager inhibitions (real Alertmanager)', () => {
  type Labels = Record<string, string>;
  let am: ChildProcess | undefined;
  let amUrl = '';
  let dir = '';
  let amLog = '';

  /** The labels of `alertname` at `severity` as the rules produce them (alerts.test.yml). */
  function ruleLabels(alertname: string, severity: string): Labels {
    const file = loadYamlFile<{
      tests: { alert_rule_test?: { alertname: string; exp_alerts?: { exp_labels: Labels }[] }[] }[];
    }>(ALERT_TESTS);
    for (const test of file.tests)
      for (const rule of test.alert_rule_test ?? [])
        for (const expected of rule.alertname === alertname ? (rule.exp_alerts ?? []) : [])
          if (expected.exp_labels.severity === severity)
            return { alertname, ...expected.exp_labels };
    throw new Error(`alerts.test.yml has no firing ${alertname} at ${severity}`);
  }

  /** Posts `firing`, then answers which of them Alertmanager reports suppressed. */
  async function suppressed(firing: Labels[]): Promise<string[]> {
    const startsAt = new Date().toISOString();
    const post = await fetch(`${amUrl}/api/v2/alerts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(firing.map((labels) => ({ labels, startsAt }))),
    });
    expect(post.status).toBe(200);
    const names = (labels: Labels) => `${labels.alertname}/${labels.severity}`;
    return waitFor('Alertmanager lists every posted alert', async () => {
      const res = await fetch(`${amUrl}/api/v2/alerts`);
      const alerts = (await res.json()) as { labels: Labels; status: { state: string } }[];
      if (alerts.length < firing.length) return undefined;
      return alerts
        .filter((a) => a.status.state === 'suppressed')
        .map((a) => names(a.labels))
        .sort();
    });
  }

  beforeEach(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'sy-am-'));
    const port = await freePort();
    amUrl = `http://127.0.0.1:${port}`;
    amLog = '';
    am = spawn(
      alertmanagerBin as string,
      [
        `--config.file=${path.join(process.cwd(), 'monitoring/alertmanager/alertmanager.yml')}`,
        `--storage.path=${dir}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--cluster.listen-address=',
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    am.stdout?.on('data', (chunk) => (amLog += chunk));
    am.stderr?.on('data', (chunk) => (amLog += chunk));
    await waitFor('Alertmanager ready', async () =>
      (await fetch(`${amUrl}/-/ready`)).ok ? true : undefined,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${amLog}`);
    });
  }, 40_000);

  afterEach(async () => {
    if (am && am.exitCode === null) {
      const exited = new Promise((resolve) => am?.once('exit', resolve));
      am.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
      clearTimeout(timer);
      if (am.exitCode === null) am.kill('SIGKILL');
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('silences the warning twin of a firing critical alert', async () => {
    const twins = ['HighErrorRate', 'NoHealthySessions', 'QueueBacklog', 'CreditFailures'];
    const firing = twins.flatMap((name) => [
      ruleLabels(name, 'critical'),
      ruleLabels(name, 'warning'),
    ]);
    expect(await suppressed(firing)).toEqual(twins.map((name) => `${name}/warning`).sort());
  });

  it('silences the other alerts of an instance that is down, and only of that one', async () => {
    const down = ruleLabels('APIDown', 'critical');
    const other = (labels: Labels) => ({ ...labels, instance: 'api-2:8000' });
    const firing = [
      down,
      ruleLabels('DatabaseDown', 'critical'),
      ruleLabels('RedisDown', 'critical'),
      ruleLabels('DBPoolSaturation', 'warning'),
      other(ruleLabels('RedisDown', 'critical')),
    ];
    expect(down.instance).toBe(firing[1].instance);
    expect(await suppressed(firing)).toEqual([
      'DBPoolSaturation/warning',
      'DatabaseDown/critical',
      'RedisDown/critical',
    ]);
  });

  it('silences the pool and latency alerts while DatabaseDown fires', async () => {
    const firing = [
      ruleLabels('DatabaseDown', 'critical'),
      ruleLabels('DBPoolSaturation', 'warning'),
      ruleLabels('HighDatabaseLatency', 'warning'),
    ];
    expect(await suppressed(firing)).toEqual([
      'DBPoolSaturation/warning',
      'HighDatabaseLatency/warning',
    ]);
  });
});
