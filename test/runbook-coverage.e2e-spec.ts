import { ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { dump, load } from 'js-yaml';
import { Client } from 'pg';
import { DataSource, DataSourceOptions, MigrationInterface } from 'typeorm';
import * as ts from 'typescript';
import {
  createDataSource,
  MIGRATION_LOCK_ID,
  migrationsOn,
  RequestLogWriter,
  runMigrationsLocked,
} from '@app/database';
import { MIGRATIONS } from '../migrations';
import { loadConfig } from '@app/config';
import { adminToken, newConsumer, TestConsumer } from './support/auth-factory';
import {
  createTestDatabase,
  dropDatabase,
  startGateway,
  TestGateway,
  uniqueRedisPrefix,
} from './support/gateway';
import { exited, spawnUntil } from './support/child-process';
import { testEnv } from './support/test-env';
import { cliInProcess } from './support/in-process-cli';
import { rawRequest } from './faults/harness';
import {
  bash,
  CI,
  commandLines,
  findTool,
  freePort,
  isKnownMetric,
  markdownAnchors,
  metricNamesIn,
  repoFile,
  requireToolOrSkip,
  ROOT,
  run,
  stripComment,
  waitFor,
} from './monitoring.helpers';

/**
 * Issue 9: every procedure of the five seed runbooks has a Switchyard equivalent in
 * docs/runbook.md. This suite checks the "Seed procedure coverage" table against the list of the
 * seeds' procedures kept below, runs every command of "Additional procedures" (the sections
 * written for it) against a live gateway, its database, Redis and an Alertmanager, and tests
 * `migrate:revert`, the CLI step the database rollback needs.
 */

const RUNBOOK = repoFile('docs/runbook.md');

/** A "## " part of the runbook, up to the next "## " heading. */
function part(heading: string): string {
  const start = RUNBOOK.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`docs/runbook.md has no "${heading}"`);
  const rest = RUNBOOK.slice(start + 1);
  const next = rest.indexOf('\n## ', heading.length);
  return next < 0 ? rest : rest.slice(0, next + 1);
}

/** The "### " sections of a part, in order. */
function sections(markdown: string): { title: string; body: string }[] {
  return markdown
    .split(/\n(?=### )/)
    .filter((chunk) => chunk.startsWith('### '))
    .map((chunk) => ({ title: chunk.slice(4, chunk.indexOf('\n')).trim(), body: chunk }));
}

const ADDITIONAL = part('## Additional procedures');
const COVERAGE = part('## Seed procedure coverage');

/**
 * The seeds' procedures: every "##", "###" and "####" heading of each seed that describes
 * something an operator does or reads, exactly as the seed writes it. Duplicated headings
 * carry their parent ("Authentication › Overview"). Each must be a row of its seed's table.
 */
const SEED_PROCEDURES: Record<string, string[]> = {
  '000': [
    'Architecture Components',
    'Key Metrics',
    'Alert: High Error Rate',
    'Alert: No Healthy Sessions',
    'Alert: High Database Latency',
    'Alert: Session Rotation Failures',
    'Symptom: Circuit Breaker Always Open',
    'Symptom: Database Connection Refused',
    'Symptom: Memory Leak / High Memory Usage',
    'Adding New Sessions',
    'Database Backup',
    'Rotating API Keys',
    'Upgrading Database Schema',
    'Total System Failure',
    'Emergency Session Injection',
    'Rollback to Previous Version',
    'Contact Information',
  ],
  '001': [
    'Quick Reference',
    'Runbook Structure',
    'Check Service Health',
    'Access Monitoring Tools',
    'Database Access',
    'Redis Access',
    'Log Analysis',
    'Level 1: On-Call Engineer',
    'Level 2: Senior Engineer',
    'Level 3: Engineering Lead',
    'Emergency Contacts',
    '1. Acknowledge Alert',
    '2. Assess Impact',
    '3. Investigate',
    '4. Resolve',
    '5. Document',
    '6. Post-Mortem',
    'Restart API Service',
    'Restart All Services',
    'Clear Redis Cache',
    'Database Connection Reset',
    'View Recent Metrics',
    'Scheduled Maintenance Process',
    'Maintenance Runbooks',
    'Quick Wins',
    'Testing After Incident',
  ],
  '002': [
    'API Health',
    'Dependency Health',
    'Healthcheck Checklist',
    'Issue: API returns 503 Service Unavailable',
    'Issue: Database Connection Failed',
    'Issue: Redis Connection Failed',
    'Issue: Authentication Failures',
    'Issue: LLM Provider Errors',
    '"Cannot connect to database"',
    '"Slow API responses"',
    '"WebSocket disconnections"',
    'Enable Debug Logging',
    'Correlation ID Tracking',
    'High CPU Usage',
    'High Memory Usage',
    'Database Slow Queries',
    'Vacuum and Analyze',
    'Index Maintenance',
    'Table Statistics',
    'Clear Specific Cache',
    'Monitor Cache',
    'Code Rollback',
    'Database Rollback',
    'Configuration Rollback',
    'Severity Levels',
    'P1 Response Procedure',
    'Emergency Contacts',
    'Quick Recovery Commands',
    'Scheduled Maintenance',
    'Zero-Downtime Deployment',
    'Recommended Alerts',
  ],
  '003': [
    'Deploy Update',
    'Rollback to Previous Version',
    'Check Service Status',
    'Restart Services',
    'Clear Caches',
    'Backup',
    'Check Health',
    'Authentication › Overview',
    'Creating Admin Users',
    'Getting a JWT Token',
    'Using JWT for Admin Operations',
    'Token Configuration',
    'Circuit Breaker › Overview',
    'States',
    'Transitions',
    'Monitoring',
    'Manual Intervention',
    'Redis Failure',
    'ChromaDB Failure',
    'Groq API Failure',
    'PostgreSQL Failure',
    'Endpoints',
    'Key Metrics to Monitor',
    'Alerting',
    'RTO/RPO',
    'Backup Schedule',
    'Restore Procedure',
    'Restore Verification',
    '"Rate limit exceeded" errors',
    '"Circuit breaker open" errors',
    'Sessions not persisting',
    'Slow responses',
    'Updating Dependencies',
    'Rotating Secrets',
    'Clearing Old Data',
    'Graceful Shutdown',
  ],
  '004': [
    'Critical Components',
    'Health Check Endpoints',
    'Key Metrics to Monitor',
    'Alert Configuration',
    'Check Circuit Breaker Status',
    'Force Reset Circuit Breaker',
    'Force Open for Testing',
    'Check Database Connection',
    'Clean Up Old Data',
    'Emergency Backup',
    'Check User Credits',
    'Grant Emergency Credits',
    'Fix Credit Discrepancies',
    'Check Queue Status',
    'Clear Stuck Jobs',
    'Force Generation',
    'Clear Recently Served Cache',
    'View Cache Statistics',
    'P0: Complete Service Outage',
    'P1: Circuit Breaker Stuck Open',
    'P1: High Error Rate',
    'P2: Credit System Issues',
    'P2: WebSocket Disconnections',
    'Daily Tasks',
    'Weekly Tasks',
    'Monthly Tasks',
    'Backup Strategy',
    'Database Recovery',
    'Object Storage Recovery',
    'Database Optimization',
    'Application Optimization',
    'Escalation Path',
    'Appendix: Quick Commands',
  ],
};

/**
 * The seeds' other headings, so that every heading is accounted for: grouping headings whose
 * subsections are the rows, tables of contents and link lists.
 */
const NOT_PROCEDURES: Record<string, string[]> = {
  '000': [
    'Table of Contents',
    'System Overview',
    'Common Alerts',
    'Troubleshooting',
    'Maintenance Procedures',
    'Emergency Procedures',
    'Related Documentation',
  ],
  '001': [
    'General Debugging Commands',
    'Escalation Path',
    'Incident Response Process',
    'Common Fixes',
    'Maintenance Windows',
    'Performance Tuning',
    'Additional Resources',
  ],
  '002': [
    'Table of Contents',
    'Health Checks',
    'Common Issues',
    'Debugging Guide',
    'By Symptom',
    'Performance Issues',
    'Database Operations',
    'Cache Operations',
    'Rollback Procedures',
    'Incident Response',
    'Maintenance Windows',
    'Monitoring Alerts',
    'Related Documentation',
  ],
  '003': [
    'Table of Contents',
    'Quick Commands',
    'Authentication',
    'Circuit Breaker',
    'Failure Modes & Recovery',
    'Health Monitoring',
    'Disaster Recovery',
    'Common Issues',
    'Maintenance Procedures',
  ],
  '004': [
    'System Overview for Operations',
    'Monitoring & Alerts',
    'Common Operations',
    '1. Circuit Breaker Management',
    '2. Database Operations',
    '3. Credit System Management',
    '4. Generation Queue Management',
    '5. Cache Management',
    'Incident Response Procedures',
    'Maintenance Procedures',
    'Disaster Recovery',
    'Recovery Procedures',
    'Performance Tuning',
    'Contact Information',
    'Useful Resources',
  ],
};

interface CoverageRow {
  seed: string;
  procedure: string;
  links: string[];
}

/** The rows of the coverage tables: "### Seed NNN: …" sections, one table each. */
function coverageRows(): CoverageRow[] {
  const rows: CoverageRow[] = [];
  for (const { title, body } of sections(COVERAGE)) {
    const seed = /^Seed (\d{3})\b/.exec(title)?.[1];
    if (!seed) throw new Error(`coverage section "${title}" names no seed`);
    for (const line of body.split('\n')) {
      if (!line.startsWith('|') || /^\|\s*(Seed procedure|-)/.test(line)) continue;
      const cells = line.split('|').slice(1, -1);
      rows.push({
        seed,
        procedure: cells[0].trim(),
        links: [...(cells[1] ?? '').matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1]),
      });
    }
  }
  return rows;
}

describe('runbook: seed procedure coverage', () => {
  const anchors = markdownAnchors(RUNBOOK);

  it('is the last part of docs/runbook.md and has a table per seed', () => {
    expect(RUNBOOK.slice(RUNBOOK.indexOf('\n## Seed procedure coverage\n') + 1)).toBe(COVERAGE);
    expect(sections(COVERAGE).map((s) => /^Seed (\d{3})/.exec(s.title)?.[1])).toEqual(
      Object.keys(SEED_PROCEDURES),
    );
  });

  it('points every row at least one section, and every link at a heading', () => {
    const rows = coverageRows();
    expect(rows.filter((r) => r.links.length === 0)).toEqual([]);
    const broken = rows.flatMap((r) =>
      r.links.filter((a) => !anchors.has(a)).map((a) => `${r.seed} ${r.procedure} → #${a}`),
    );
    expect(broken).toEqual([]);
    const inPart = [...ADDITIONAL.matchAll(/\]\(#([^)\s]+)\)/g)].map((m) => m[1]);
    expect(inPart.filter((a) => !anchors.has(a))).toEqual([]);
  });

  it('has exactly one row for every seed procedure, and none for grouping headings', () => {
    const rows = coverageRows();
    for (const seed of Object.keys(SEED_PROCEDURES)) {
      const named = rows.filter((r) => r.seed === seed).map((r) => r.procedure);
      expect({ seed, rows: [...named].sort() }).toEqual({
        seed,
        rows: [...SEED_PROCEDURES[seed]].sort(),
      });
      expect(SEED_PROCEDURES[seed].filter((h) => NOT_PROCEDURES[seed].includes(h))).toEqual([]);
    }
  });
});

/** How a command line of "Additional procedures" is handled here. */
type Kind =
  /** SY=…, REDIS_URL=…: the conventions; the test's own values are used. */
  | 'convention'
  /** CID=…: kept and run before the section's later lines, as in an operator's shell. */
  | 'assignment'
  /** curl "$PROM/…": run against a live Prometheus by monitoring-live.e2e-spec.ts. */
  | 'prometheus'
  /** npm outdated/install/audit/test, npm run typecheck/lint/build, docker build: slow or need the internet. */
  | 'toolchain'
  /** docker compose logs … api | …: the same pipeline, over the gateway's captured log lines. */
  | 'gateway-logs'
  /** Other docker, kubectl and git lines: no container runtime or cluster in the tests. */
  | 'not-here'
  | 'run';

function classify(line: string): Kind {
  if (/^(SY|PROM|DATABASE_URL|REDIS_URL|AM)=/.test(line)) return 'convention';
  if (/^[A-Z][A-Z0-9_]*=[^\s;|&]+$/.test(line)) return 'assignment';
  if (line.startsWith('curl -s "$PROM/')) return 'prometheus';
  if (
    /^(npm (outdated|install|audit|test)\b|npm run (typecheck|lint|build)\b|docker build )/.test(
      line,
    )
  )
    return 'toolchain';
  if (/^docker compose logs\b[^|]*\b(api|worker)\b[^|]*\|/.test(line)) return 'gateway-logs';
  // Also behind variables: LOG_LEVEL=debug docker compose up …
  if (/^(?:[A-Z][A-Z0-9_]*=\S+ )*(docker|kubectl|git) /.test(line)) return 'not-here';
  return 'run';
}

/** Lines that legitimately print nothing (file operations, deletions of whatever matched). */
const MAY_BE_SILENT = [
  /xargs -r /,
  /^psql "\$DATABASE_URL"$/,
  /^(mkdir|cp|sed -i|pg_dump|reindexdb) /,
  /^printf .*> /,
  / monitor \|/,
];

/** stderr that means a command did not work even though the pipeline's last step exited 0. */
const BROKEN =
  /jq: error|parse error|ERROR:|command not found|No such file|Unknown command|usage:/i;

const CLI = `node -r ${ROOT}/test/support/ts-register.js ${ROOT}/apps/cli/src/main.ts `;
const JWT_SECRET = 'test-jwt-secret-that-is-long-enough-0123456789';

interface LineResult {
  line: string;
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Files the runbook's commands create or edit (dumps, .env copies, compose overrides) go here. */
const SANDBOX = mkdtempSync(path.join(tmpdir(), 'sy-runbook-'));
afterAll(() => rmSync(SANDBOX, { recursive: true, force: true }));

const ADDITIONAL_SECTIONS = sections(ADDITIONAL);
const section = (title: string) => {
  const found = ADDITIONAL_SECTIONS.find((s) => s.title === title);
  if (!found) throw new Error(`no "### ${title}" in Additional procedures`);
  return found;
};
const shLines = (title: string) => commandLines(section(title).body, 'sh');

describe('runbook: every command line of "Additional procedures" is recognised', () => {
  it('classifies each line, and runs most of them', () => {
    const lines = commandLines(ADDITIONAL, 'sh');
    const kinds = lines.map(classify);
    expect(lines.length).toBeGreaterThan(100);
    expect(kinds.filter((k) => k === 'run').length).toBeGreaterThan(70);
  });

  it('queries Prometheus only with valid PromQL over metrics the gateway exports', () => {
    // monitoring-live.e2e-spec.ts runs the unindented ones against a live Prometheus; this checks
    // all of them (list items indent theirs) with promtool, as recording rules.
    const queries = commandLines(ADDITIONAL, 'sh')
      .filter((l) => classify(l) === 'prometheus')
      .map((l) => /--data-urlencode 'query=([^']+)'/.exec(l)?.[1] as string);
    expect(queries.length).toBeGreaterThan(5);
    expect(queries.filter((q) => !q)).toEqual([]);
    const unknown = queries.flatMap((q) => metricNamesIn(q).filter((m) => !isKnownMetric(m)));
    expect(unknown).toEqual([]);
    const promtool = requireToolOrSkip('promtool', 'prometheus');
    if (!promtool) return;
    const file = path.join(SANDBOX, 'runbook-queries.rules.yml');
    const rules = queries.map((expr, i) => ({ record: `runbook:query_${i}`, expr }));
    writeFileSync(file, dump({ groups: [{ name: 'runbook', rules }] }));
    const checked = run(promtool, ['check', 'rules', file]);
    expect({ status: checked.status, out: checked.stdout + checked.stderr }).toMatchObject({
      status: 0,
    });
  });

  it('gives kubectl valid JSON and only container names the manifests have', () => {
    const lines = commandLines(RUNBOOK, 'sh').filter((l) => l.startsWith('kubectl '));
    const json = lines.flatMap((l) => [...l.matchAll(/(?:-p|--overrides=) ?'(\[.*?\]|\{.*?\})'/g)]);
    expect(json.length).toBeGreaterThan(1);
    for (const [, text] of json) expect(() => JSON.parse(text)).not.toThrow();
    const manifests: Record<string, string> = {
      'deployment/switchyard': repoFile('deploy/kubernetes/deployment.yaml'),
      'deployment/switchyard-worker': repoFile('deploy/kubernetes/worker-deployment.yaml'),
    };
    const unknown: string[] = [];
    const setImage = lines.filter((l) => / set image /.test(l));
    expect(setImage.length).toBeGreaterThan(1);
    for (const line of setImage) {
      const [, target, images] = / set image (\S+) (.*)$/.exec(stripComment(line)) ?? [];
      for (const [, container] of images.matchAll(/(\S+)=\S+/g))
        if (!manifests[target]?.includes(`- name: ${container}\n`))
          unknown.push(`${target} ${container}`);
    }
    expect(unknown).toEqual([]);
  });

  it('names only npm scripts that exist', () => {
    const scripts = JSON.parse(repoFile('package.json')).scripts as Record<string, string>;
    const named = [...ADDITIONAL.matchAll(/npm run ([a-z:]+)/g)].map((m) => m[1]);
    expect(named.filter((name) => !scripts[name])).toEqual([]);
    // `npm test` is the README's test command.
    expect(scripts.test).toBeDefined();
  });
});

const psqlTool = requireToolOrSkip('psql', 'postgresql-client');
const jqTool = requireToolOrSkip('jq', 'jq');
const redisCli = requireToolOrSkip('redis-cli', 'redis-tools');
const amtool = requireToolOrSkip('amtool', 'prometheus-alertmanager');
const alertmanagerBin = findTool('prometheus-alertmanager') ?? findTool('alertmanager');
const tools = Boolean(psqlTool && jqTool && redisCli);

function filesIn(dir: string, suffix: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(suffix)) : [];
}

(psqlTool && jqTool ? describe : describe.skip)(
  'runbook: profiling a real gateway process with the runbook’s NODE_OPTIONS',
  () => {
    it('writes a heap snapshot on SIGUSR2 and a CPU profile on a graceful stop', async () => {
      // The compose overrides of "High CPU usage" and "High memory usage and leaks", as written.
      const dir = mkdtempSync(path.join(tmpdir(), 'sy-profile-'));
      const databaseUrl = await createTestDatabase();
      let child: ChildProcess | undefined;
      try {
        const printfs = commandLines(ADDITIONAL, 'sh')
          .map(stripComment)
          .filter((l) => l.startsWith("printf 'services:"));
        expect(printfs).toHaveLength(2);
        // One override sets node flags on the command line (--cpu-prof is refused in
        // NODE_OPTIONS), the other NODE_OPTIONS; both mount a host directory for the files.
        const nodeFlags: string[] = [];
        const nodeOptions: string[] = [];
        for (const line of printfs) {
          expect((await bash(line, {}, dir)).status).toBe(0);
          const file = /> (\S+)$/.exec(line)?.[1] as string;
          const { api } = (
            load(readFileSync(path.join(dir, file), 'utf8')) as {
              services: {
                api: {
                  command?: string[];
                  environment?: { NODE_OPTIONS: string };
                  volumes: string[];
                };
              };
            }
          ).services;
          const mounted = (value: string) => {
            for (const volume of api.volumes) {
              const [host, container] = volume.split(':');
              mkdirSync(path.join(dir, host), { recursive: true });
              value = value.split(`=${container}`).join(`=${path.join(dir, host)}`);
            }
            return value;
          };
          if (api.command) {
            expect(api.command[0]).toBe('node');
            expect(api.command[api.command.length - 1]).toBe('dist/apps/gateway/src/main.js');
            nodeFlags.push(...api.command.slice(1, -1).map(mounted));
          }
          if (api.environment) nodeOptions.push(mounted(api.environment.NODE_OPTIONS));
        }
        expect(nodeFlags).toContain('--cpu-prof');
        expect(nodeOptions.join(' ')).toContain('--heapsnapshot-signal=SIGUSR2');
        const env: NodeJS.ProcessEnv = {
          ...process.env,
          NODE_ENV: 'test',
          PORT: '0',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'info',
          DATABASE_URL: databaseUrl,
          JWT_SECRET,
          SESSION_ENCRYPTION_KEY: 'a'.repeat(64),
          SESSION_HEALTH_CHECK_INTERVAL: '3600',
          NODE_OPTIONS: nodeOptions.join(' '),
        };
        delete env.REDIS_URL;
        // The image runs dist/…/main.js; from source the same entry point is main.ts.
        const started = await spawnUntil(
          process.execPath,
          [
            ...nodeFlags,
            '-r',
            path.join(ROOT, 'test/support/ts-register.js'),
            path.join(ROOT, 'apps/gateway/src/main.ts'),
          ],
          env,
          /Switchyard listening/,
        );
        child = started.child;
        const url = (JSON.parse(started.line) as { url: string }).url;

        // The memory greps of the section, against this process.
        for (const line of shLines('High memory usage and leaks').filter((l) =>
          l.startsWith('curl -s $SY/metrics'),
        )) {
          const result = await bash(stripComment(line), { SY: url });
          expect({ line, out: result.stdout.trim().length > 0 }).toEqual({ line, out: true });
        }

        // "node -e 'process.kill(1, …)'" as the runbook runs it in the container, at this pid.
        const signal = (name: string) => {
          const line = commandLines(ADDITIONAL, 'sh').find((l) =>
            l.includes(`process.kill(1, "${name}")`),
          ) as string;
          expect(line).toBeDefined();
          const command = /(node -e '[^']*')/.exec(line)?.[1] as string;
          return bash(command.replace('process.kill(1,', `process.kill(${child?.pid},`), {});
        };
        const snapshots = path.join(dir, 'snapshots');
        expect((await signal('SIGUSR2')).status).toBe(0);
        // Written once the process answers again (the snapshot blocks it).
        await waitFor(
          'a heap snapshot',
          async () => {
            const [file] = filesIn(snapshots, '.heapsnapshot');
            if (!file) return undefined;
            const res = await fetch(`${url}/health/live`);
            return res.ok && statSync(path.join(snapshots, file)).size > 0 ? file : undefined;
          },
          90_000,
        );

        expect((await signal('SIGTERM')).status).toBe(0);
        expect(await exited(child)).toBe(0);
        const profiles = path.join(dir, 'profiles');
        const [profile] = filesIn(profiles, '.cpuprofile');
        expect(profile).toBeDefined();
        // "High CPU usage" reads it with bench/profile.js from ./profiles.
        mkdirSync(path.join(SANDBOX, 'profiles'), { recursive: true });
        copyFileSync(path.join(profiles, profile), path.join(SANDBOX, 'profiles', profile));
      } finally {
        if (child && child.exitCode === null) child.kill('SIGKILL');
        await dropDatabase(databaseUrl).catch(() => undefined);
        rmSync(dir, { recursive: true, force: true });
      }
    }, 180_000);
  },
);

(tools ? describe : describe.skip)(
  'runbook: "Additional procedures" against a live gateway',
  () => {
    let gw: TestGateway;
    let consumer: TestConsumer;
    let adminJwt = '';
    let mockProviderId = '';
    let alertmanager: ChildProcess | undefined;
    let amUrl = '';
    const prefix = uniqueRedisPrefix();
    const redisUrl = testEnv.redisUrl;
    let logSource: () => string = () => gw.logText();
    let env: () => Record<string, string>;

    const admin = (method: string, route: string, body?: unknown) =>
      fetch(`${gw.url}${route}`, {
        method,
        headers: { authorization: `Bearer ${adminJwt}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });

    function fill(line: string, kind: Kind): string {
      let out = stripComment(line)
        .replace(/^((?:[A-Z][A-Z0-9_]*=\S+ )*)npm run cli -- /, `$1${CLI}`)
        .replace(/^node bench\/profile\.js /, `node ${ROOT}/bench/profile.js `)
        .replace(
          /ALTER DATABASE switchyard /g,
          `ALTER DATABASE ${new URL(env().DATABASE_URL).pathname.slice(1)} `,
        );
      if (kind === 'gateway-logs')
        out = out.replace(/^docker compose logs[^|]*\|/, 'cat "$LOGFILE" |');
      if (out.includes('redis-cli')) out = out.replace(/(['"])sy:/g, `$1${prefix}`);
      return out;
    }

    /** Runs a section's lines in order, as an operator pasting them would; returns what ran. */
    async function runSection(
      title: string,
      overrides: Record<string, string> = {},
    ): Promise<LineResult[]> {
      const results: LineResult[] = [];
      let assignments = '';
      const vars = { ...env(), ...overrides };
      const problems: string[] = [];
      for (const line of shLines(title)) {
        const kind = classify(line);
        if (kind === 'assignment') {
          assignments += `${line}\n`;
          continue;
        }
        if (kind !== 'run' && kind !== 'gateway-logs') continue;
        if (kind === 'gateway-logs') writeFileSync(vars.LOGFILE, `${logSource()}\n`);
        if (line.startsWith('psql')) {
          // Request logs are written in batches off the hot path.
          await new Promise((r) => setTimeout(r, 50));
          await gw.gateway.app.get(RequestLogWriter).flush();
        }
        const result = await bash(assignments + fill(line, kind), vars, SANDBOX);
        results.push({ line, ...result });
        const optionalExtension =
          line.includes('pg_stat_statements') &&
          /pg_stat_statements must be loaded via shared_preload_libraries/.test(result.stderr);
        if (optionalExtension) continue;
        if (result.status !== 0 || BROKEN.test(result.stderr))
          problems.push(`${line}\n  exit ${result.status}: ${result.stderr.trim()}`);
        else if (!result.stdout.trim() && !MAY_BE_SILENT.some((p) => p.test(stripComment(line))))
          problems.push(`${line}\n  printed nothing`);
      }
      expect(problems).toEqual([]);
      return results;
    }

    /** Section titles with a test below; the last test checks that none is missing. */
    const covered: string[] = [];
    const sectionTest = (title: string, fn: () => Promise<unknown>, run = true) => {
      covered.push(title);
      (run ? it : it.skip)(title, fn, 120_000);
    };

    const outputOf = (results: LineResult[], fragment: string) => {
      const found = results.find((r) => r.line.includes(fragment));
      if (!found) throw new Error(`no command containing ${fragment}`);
      return found.stdout;
    };

    async function redisKeys(pattern: string): Promise<string[]> {
      const result = await bash(
        `redis-cli -u "$REDIS_URL" --scan --pattern '${prefix}${pattern}'`,
        env(),
      );
      return result.stdout.split('\n').filter(Boolean);
    }

    /** A failed admin login: writes the lockout counters and the per-IP throttle window. */
    const failLogin = () =>
      fetch(`${gw.url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.77' },
        body: JSON.stringify({ username: 'admin', password: 'not-the-password' }),
      });

    beforeAll(async () => {
      if (!redisUrl) {
        const message = 'no Redis for the runbook tests (REDIS_URL)';
        if (CI) throw new Error(message);
        process.stderr.write(`\n[SKIPPED] ${message}: Redis sections will fail\n\n`);
      }
      gw = await startGateway({ env: { REDIS_KEY_PREFIX: prefix } });
      adminJwt = (await adminToken(gw)).token;
      consumer = await newConsumer(gw, { credits: 1000 });
      env = () => ({
        SY: gw.url,
        DATABASE_URL: gw.databaseUrl,
        TOKEN: adminJwt,
        API_KEY: consumer.key,
        KEY_ID: consumer.keyId,
        USER_ID: consumer.userId,
        REDIS_URL: redisUrl ?? '',
        AM: amUrl,
        LOGFILE: path.join(SANDBOX, 'gateway.log'),
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        REDIS_KEY_PREFIX: prefix,
        JWT_SECRET,
        SESSION_ENCRYPTION_KEY: 'a'.repeat(64),
      });
      // Traffic the sections look at: a cached chat completion (rate-limit windows, cache entry), a
      // conversation, a failed admin login (lockout counters), an audited provider change.
      const auth = { authorization: `Bearer ${consumer.key}`, 'content-type': 'application/json' };
      const chat = (headers: Record<string, string> = {}) =>
        fetch(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { ...auth, ...headers },
          body: JSON.stringify({
            model: 'mock-gpt',
            temperature: 0,
            messages: [{ role: 'user', content: 'runbook fixture' }],
          }),
        });
      expect((await chat()).status).toBe(200);
      expect((await chat({ 'x-conversation-id': 'runbook-conversation' })).status).toBe(200);
      expect((await failLogin()).status).toBe(401);
      const providers = (await (await admin('GET', '/admin/providers')).json()) as {
        data: { id: string; name: string; priority: number }[];
      };
      const mock = providers.data.find((p) => p.name === 'mock');
      mockProviderId = mock?.id ?? '';
      expect(mockProviderId).not.toBe('');
      expect(
        (
          await admin('PATCH', `/admin/providers/${mockProviderId}`, {
            priority: (mock?.priority ?? 0) + 1,
          })
        ).status,
      ).toBe(200);
      expect(
        (await admin('PATCH', `/admin/providers/${mockProviderId}`, { priority: mock?.priority }))
          .status,
      ).toBe(200);

      if (amtool && alertmanagerBin) {
        const port = await freePort();
        const storage = mkdtempSync(path.join(tmpdir(), 'sy-am-'));
        alertmanager = spawn(
          alertmanagerBin,
          [
            `--config.file=${ROOT}/monitoring/alertmanager/alertmanager.yml`,
            `--storage.path=${storage}`,
            `--web.listen-address=127.0.0.1:${port}`,
            '--cluster.listen-address=',
          ],
          { stdio: 'ignore' },
        );
        amUrl = `http://127.0.0.1:${port}`;
        await waitFor('Alertmanager', async () =>
          (await fetch(`${amUrl}/-/ready`)).ok ? true : undefined,
        );
      } else if (CI)
        throw new Error('Alertmanager (prometheus-alertmanager) missing under CI=true');
    }, 120_000);

    afterAll(async () => {
      alertmanager?.kill('SIGTERM');
      await gw?.close();
    });

    sectionTest('Components and normal ranges', async () => {
      const results = await runSection('Components and normal ranges');
      expect(outputOf(results, '/admin/resilience')).toContain('"database": true');
      expect(outputOf(results, '/admin/stats')).toContain('"requests"');
    });

    sectionTest('Incident response process', async () => {
      const results = await runSection('Incident response process');
      expect(outputOf(results, 'FROM request_logs')).toMatch(/\(\d+ rows?\)/);
      expect(outputOf(results, '/admin/audit')).toContain('provider.update');
    });

    sectionTest('Smoke test after an incident', async () => {
      const results = await runSection('Smoke test after an incident');
      const all = results.map((r) => r.stdout).join('\n');
      expect(all).toContain('"healthy": true');
      expect(all).toMatch(/^\s*20 200$/m);
      expect(outputOf(results, 'Test after incident').trim()).not.toBe('');
    });

    sectionTest('Debug logging', async () => {
      expect(shLines('Debug logging').map(classify)).not.toContain('run');
      // The gateway under test runs at info: nothing at debug.
      expect(gw.logs.filter((l) => l.includes('"level":"debug"'))).toEqual([]);
      // A restart with LOG_LEVEL=debug (and a Redis that refuses connections, which logs at debug).
      const debugGw = await startGateway({
        env: { LOG_LEVEL: 'debug' },
        redis: 'redis://127.0.0.1:1',
      });
      try {
        await waitFor('a debug line', async () =>
          debugGw.logs.some((l) => l.includes('"level":"debug"')) ? true : undefined,
        );
        logSource = () => debugGw.logText();
        const results = await runSection('Debug logging');
        expect(results.map((r) => r.stdout).join('')).toContain('"level":"debug"');
      } finally {
        logSource = () => gw.logText();
        await debugGw.close();
      }
      // The documented values are the accepted ones.
      for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
        expect(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: level }).logging.level).toBe(level);
      expect(() => loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'verbose' })).toThrow(/LOG_LEVEL/);
    });

    sectionTest('Correlation ids and log analysis', async () => {
      // A request Node's parser refuses (a bare CR inside a header), for the "unparsed" commands.
      const refused = await rawRequest(gw.url, [
        'GET /v1/models HTTP/1.1\r\nhost: x\r\nx-a: 1\rb\r\n\r\n',
      ]);
      expect(refused.status).toBe(400);
      const results = await runSection('Correlation ids and log analysis');
      expect(outputOf(results, "grep -i '^x-request-id'").toLowerCase()).toContain(
        'x-request-id: inc-4711-probe-1',
      );
      expect(outputOf(results, 'FROM request_logs WHERE request_id')).toContain('/v1/models');
      expect(outputOf(results, 'select(.request_id == $id)')).toContain(
        '"request_id":"inc-4711-probe-1"',
      );
      expect(outputOf(results, `grep -F 'route="unparsed"'`)).toMatch(
        /http_requests_total\{method="UNKNOWN",route="unparsed",status="400"\} [1-9]/,
      );
      expect(outputOf(results, 'request refused by the HTTP parser')).toContain(
        '"parser_error":"HPE_',
      );
    });

    sectionTest('API answers 503', async () => {
      const results = await runSection('API answers 503');
      expect(outputOf(results, '/v1/chat/completions')).toContain('"code": null');
      const chatLine = shLines('API answers 503').find((l) =>
        l.includes('/v1/chat/completions'),
      ) as string;
      expect(
        (await admin('PATCH', `/admin/providers/${mockProviderId}`, { enabled: false })).status,
      ).toBe(200);
      try {
        const result = await bash(fill(chatLine, 'run'), env(), SANDBOX);
        expect(result.stdout).toContain('"code": "model_unavailable"');
      } finally {
        await admin('PATCH', `/admin/providers/${mockProviderId}`, { enabled: true });
      }
    });

    sectionTest('High CPU usage', async () => {
      expect(filesIn(path.join(SANDBOX, 'profiles'), '.cpuprofile')).toHaveLength(1); // from the profiling test
      const results = await runSection('High CPU usage');
      expect(outputOf(results, '$SY/metrics')).toContain('process_cpu_seconds_total');
      expect(outputOf(results, 'bench/profile.js')).toMatch(/\S/);
    });

    sectionTest('High memory usage and leaks', async () => {
      const results = await runSection('High memory usage and leaks');
      const metrics = results
        .filter((r) => r.line.includes('$SY/metrics'))
        .map((r) => r.stdout)
        .join('');
      for (const name of [
        'nodejs_heap_size_used_bytes',
        'process_resident_memory_bytes',
        'gateway_request_logs_buffered',
        'gateway_websocket_connections',
      ])
        expect(metrics).toContain(name);
    });

    sectionTest('Database access and activity', async () => {
      const results = await runSection('Database access and activity');
      expect(outputOf(results, 'GROUP BY 1, 2 ORDER BY 3 DESC')).toMatch(/^\s*switchyard\s*\|/m);
    });

    sectionTest('Database connection reset', async () => {
      const results = await runSection('Database connection reset');
      const terminated = Number(
        /terminated\s*\n-+\n\s*(\d+)/.exec(outputOf(results, 'pg_terminate_backend'))?.[1],
      );
      expect(terminated).toBeGreaterThan(0);
      expect(outputOf(results, '/health/ready')).toContain('"status":"ok"');
      const res = await fetch(`${gw.url}/v1/models`, {
        headers: { authorization: `Bearer ${consumer.key}` },
      });
      expect(res.status).toBe(200);
      expect((await fetch(`${gw.url}/health/ready`)).status).toBe(200);
    });

    sectionTest('Database slow queries', async () => {
      await withClient(gw.databaseUrl, (c) =>
        c.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements'),
      );
      const results = await runSection('Database slow queries');
      expect(outputOf(results, 'SET log_min_duration_statement')).toContain('ALTER DATABASE');
      expect(outputOf(results, 'EXPLAIN')).toMatch(/request_logs_\d{8}/);
    });

    sectionTest('Vacuum and analyze', async () => {
      const results = await runSection('Vacuum and analyze');
      expect(outputOf(results, 'ANALYZE request_logs')).toContain('ANALYZE');
      expect(outputOf(results, 'VACUUM (FULL, ANALYZE)')).toContain('VACUUM');
    });

    sectionTest('Index maintenance', async () => {
      const results = await runSection('Index maintenance');
      expect(outputOf(results, 'REINDEX TABLE CONCURRENTLY request_logs')).toContain('REINDEX');
      expect(outputOf(results, 'NOT indisvalid')).toContain('(0 rows)');
    });

    sectionTest('Table sizes and statistics', async () => {
      const results = await runSection('Table sizes and statistics');
      expect(
        Number(/partitions.*\n-+.*\n\s*(\d+)/.exec(outputOf(results, 'pg_inherits'))?.[1]),
      ).toBeGreaterThan(0);
    });

    sectionTest('Writing a migration', async () => {
      const scratch = await createTestDatabase();
      const indexOf = (url: string) =>
        withClient(
          url,
          async (c) =>
            (
              await c.query<{ valid: boolean }>(
                `SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass('credit_ledger_event_created_idx')`,
              )
            ).rows[0]?.valid,
        );
      try {
        const results = await runSection('Writing a migration', { DATABASE_URL: scratch });
        expect(outputOf(results, 'date +%s%3N').trim()).toMatch(/^\d{13}$/);
        expect(outputOf(results, 'migrate --dry')).toContain('No pending migrations.');
        expect(outputOf(results, 'migrate:revert --dry')).toContain('Would revert: ');
        expect(outputOf(results, 'CREATE INDEX CONCURRENTLY')).toContain('CREATE INDEX');
        expect(outputOf(results, 'NOT indisvalid')).toContain('(0 rows)');
        expect(await indexOf(scratch)).toBe(true);

        // The example migration and its registration, as written.
        const [source, registration] = [
          ...section('Writing a migration').body.matchAll(/^\s*```ts\n([\s\S]*?)^\s*```/gm),
        ].map((m) => m[1].replace(/^ {3}/gm, ''));
        const file = /^\/\/ migrations\/(\d{13}-[a-z-]+)\.ts$/m.exec(source)?.[1] as string;
        expect(file).toBeDefined();
        const exported: Record<string, new () => MigrationInterface> = {};
        const js = ts.transpileModule(source, {
          compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
        }).outputText;
        vm.runInThisContext(`(function (exports, require) {${js}\n})`)(exported, require);
        const [[name, Migration]] = Object.entries(exported);
        expect(name.endsWith(file.slice(0, 13))).toBe(true);
        expect(new Migration().name).toBe(name);
        expect(registration).toContain(`import { ${name} } from './${file}';`);
        expect(registration).toMatch(new RegExp(`^\\s+${name},$`, 'm'));

        // Through the migration runner the gateway and `migrate` use: on the hand-built index it
        // only records itself; its down step (what migrate:revert runs) drops the index; applied
        // again on a database without it, it builds it.
        const dataSource = new DataSource({
          ...createDataSource(scratch, loadConfig({ NODE_ENV: 'test' }).database).options,
          migrations: [...MIGRATIONS, Migration],
        } as DataSourceOptions);
        await dataSource.initialize();
        try {
          expect((await runMigrationsLocked(dataSource)).map((m) => m.name)).toEqual([name]);
          expect(await indexOf(scratch)).toBe(true);
          const runner = dataSource.createQueryRunner();
          await runner.connect();
          try {
            await migrationsOn(dataSource, runner).undoLastMigration();
          } finally {
            await runner.release();
          }
          expect(await appliedMigrations(scratch)).not.toContain(name);
          expect(await indexOf(scratch)).toBeUndefined();
          expect((await runMigrationsLocked(dataSource)).map((m) => m.name)).toEqual([name]);
          expect(await indexOf(scratch)).toBe(true);
        } finally {
          await dataSource.destroy();
        }
      } finally {
        await dropDatabase(scratch);
      }
    });

    sectionTest('Database rollback', async () => {
      const scratch = await createTestDatabase();
      try {
        const results = await runSection('Database rollback', { DATABASE_URL: scratch });
        expect(outputOf(results, 'migrate:revert --dry')).toContain(
          'Would revert: LedgerHoldIds1732300018000',
        );
        expect(results.map((r) => r.stdout).join('')).toContain(
          'Reverted LedgerHoldIds1732300018000.',
        );
        expect(outputOf(results, 'FROM migrations')).not.toContain('LedgerHoldIds');
        expect(
          filesIn(SANDBOX, '.dump').some((f) => f.startsWith('switchyard-before-revert-')),
        ).toBe(true);
        // The one-off pod of the Kubernetes variant: valid JSON, the Deployments' configuration.
        const oneOff = shLines('Database rollback').find((l) =>
          l.includes('--overrides='),
        ) as string;
        const overrides = JSON.parse(/--overrides='([^']+)'/.exec(oneOff)?.[1] as string) as {
          spec: {
            containers: { command: string[]; envFrom: Record<string, { name: string }>[] }[];
          };
        };
        const [container] = overrides.spec.containers;
        expect(container.command).toEqual(['node', 'dist/apps/cli/src/main.js', 'migrate:revert']);
        const deployment = repoFile('deploy/kubernetes/deployment.yaml');
        for (const ref of container.envFrom)
          expect(deployment).toContain(`{ name: ${Object.values(ref)[0].name} }`);
      } finally {
        await dropDatabase(scratch);
      }
    });

    sectionTest('Configuration changes and rollback', async () => {
      writeFileSync(path.join(SANDBOX, '.env'), 'LOG_LEVEL=info\n');
      const results = await runSection('Configuration changes and rollback');
      expect(readdirSync(SANDBOX).some((f) => /^\.env\.\d{8}-\d{6}$/.test(f))).toBe(true);
      expect(outputOf(results, 'migrate --dry')).toContain('No pending migrations.');
      // The audited change with its old value, which is what a rollback restores.
      expect(outputOf(results, 'action=provider.update')).toMatch(/"target":"mock".*"before":\{/);
      // What the comment promises for a bad value.
      const bad = await bash(`DB_POOL_MAX_SIZE=lots ${CLI}migrate --dry`, env(), SANDBOX);
      expect(bad.status).toBe(1);
      expect(bad.stderr).toContain('config error: DB_POOL_MAX_SIZE');
    });

    sectionTest('Zero-downtime deployment', async () => {
      mkdirSync(path.join(SANDBOX, 'deploy/kubernetes'), { recursive: true });
      copyFileSync(
        path.join(ROOT, 'deploy/kubernetes/kustomization.yaml'),
        path.join(SANDBOX, 'deploy/kubernetes/kustomization.yaml'),
      );
      const results = await runSection('Zero-downtime deployment');
      expect(outputOf(results, 'migrate --dry')).toContain('No pending migrations.');
      const kustomization = load(
        readFileSync(path.join(SANDBOX, 'deploy/kubernetes/kustomization.yaml'), 'utf8'),
      ) as {
        images: { name: string; newTag: string }[];
      };
      expect(kustomization.images).toEqual([
        { name: 'registry.example.com/switchyard', newTag: 'NEW_TAG' },
      ]);
    });

    sectionTest(
      'Maintenance windows',
      async () => {
        const results = await runSection('Maintenance windows');
        expect(outputOf(results, 'silence add').trim()).toMatch(/^[0-9a-f-]{36}$/);
        expect(
          results.find(
            (r) => r.line.startsWith('amtool silence query') && !r.line.includes('xargs'),
          )?.stdout,
        ).toContain('maintenance window CHG-1234');
        const left = await bash('amtool silence query --alertmanager.url=$AM -q', env());
        expect(left.stdout.trim()).toBe('');
      },
      Boolean(amtool && alertmanagerBin),
    );

    sectionTest('Routine maintenance checklist', async () => {
      const results = await runSection('Routine maintenance checklist');
      expect(outputOf(results, '/admin/credits/audit')).toContain('"healthy": true');
      expect(outputOf(results, '/admin/circuit-breakers')).toContain('"name":"mock"');
    });

    sectionTest('Disaster recovery', async () => {
      const results = await runSection('Disaster recovery');
      expect(outputOf(results, '/admin/credits/audit')).toContain('"healthy": true');
      expect(outputOf(results, 'last_ledger_row')).toMatch(/\(1 row\)/);
      const [cron] = commandLines(section('Disaster recovery').body, 'crontab');
      const command = cron
        .split(/\s+/)
        .slice(5)
        .join(' ')
        .replace(/\\%/g, '%')
        .replace(/\/backups/g, path.join(SANDBOX, 'backups'));
      mkdirSync(path.join(SANDBOX, 'backups'), { recursive: true });
      const result = await bash(command, env(), SANDBOX);
      expect({ status: result.status, stderr: result.stderr }).toEqual({ status: 0, stderr: '' });
      expect(
        filesIn(path.join(SANDBOX, 'backups'), '.dump').filter((f) =>
          /^switchyard-\d{8}-\d{6}\.dump$/.test(f),
        ),
      ).toHaveLength(1);
    });

    sectionTest('Redis access and key families', async () => {
      // The throttle window lives a minute: on a slow run the fixture's one has expired by now.
      expect((await failLogin()).status).toBe(401);
      const results = await runSection('Redis access and key families');
      expect(outputOf(results, ' ping')).toContain('PONG');
      const families = outputOf(results, 'uniq -c');
      for (const family of ['rc', 'rl', 'conv', 'auth', 'throttle'])
        expect(families).toMatch(new RegExp(`\\s${family}$`, 'm'));
      // Every family the gateway wrote is one the section's table explains.
      const documented = [
        ...section('Redis access and key families').body.matchAll(/^\| `sy:([a-z]+)/gm),
      ].map((m) => m[1]);
      const written = [...families.matchAll(/^\s*\d+ (\S+)$/gm)].map((m) => m[1]);
      expect(written.filter((f) => !documented.includes(f))).toEqual([]);
    });

    sectionTest('Clearing specific Redis state', async () => {
      expect(await redisKeys('rc:*')).not.toEqual([]);
      await runSection('Clearing specific Redis state');
      expect(await redisKeys('rc:*')).toEqual([]);
      expect(await redisKeys(`rl:{${consumer.keyId}}:*`)).toEqual([]);
      expect(await redisKeys(`conv:${consumer.userId}:*`)).toEqual([]);
      expect(await redisKeys('auth:login-failures:*')).toEqual([]);
      // The gateway is fine without them.
      const res = await fetch(`${gw.url}/v1/models`, {
        headers: { authorization: `Bearer ${consumer.key}` },
      });
      expect(res.status).toBe(200);
    });

    sectionTest('Rotating secrets', async () => {
      const results = await runSection('Rotating secrets');
      expect(outputOf(results, 'rand -hex 32').trim()).toMatch(/^[0-9a-f]{64}$/);
      expect(
        loadConfig({
          NODE_ENV: 'production',
          DATABASE_URL: 'postgres://x@y/z',
          JWT_SECRET: outputOf(results, 'rand -base64 48').trim(),
          SESSION_ENCRYPTION_KEY: outputOf(results, 'rand -hex 32').trim(),
        }).production,
      ).toBe(true);
    });

    sectionTest('Updating dependencies', async () => {
      expect(
        shLines('Updating dependencies')
          .map(classify)
          .filter((k) => k !== 'toolchain'),
      ).toEqual([]);
      expect(JSON.parse(repoFile('package.json')).allowScripts).toBeDefined();
    });

    it('has a test for every section of the part', () => {
      expect(ADDITIONAL_SECTIONS.map((s) => s.title).filter((t) => !covered.includes(t))).toEqual(
        [],
      );
    });
  },
);

async function withClient<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function appliedMigrations(url: string): Promise<string[]> {
  return withClient(url, async (c) =>
    (await c.query('SELECT name FROM migrations ORDER BY id')).rows.map((r) => r.name),
  );
}

/** Which credits_apply_batch the database has: the last migration's, or the one before it. */
/**
 * Which credits_apply_batch is installed: 'ordered' (one INSERT per batch, time-ordered ids:
 * migration 1732300014000), 'rows' (one INSERT per batch, random ids: 1732300012000) or 'loop'.
 */
async function ledgerBatchVersion(url: string): Promise<'ordered' | 'rows' | 'loop' | 'none'> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ body: string }>(
      `SELECT prosrc AS body FROM pg_proc WHERE proname = 'credits_apply_batch'`,
    );
    if (rows.length === 0) return 'none';
    if (!rows[0].body.includes('credit_ledger_batch_row')) return 'loop';
    return rows[0].body.includes('uuid_v7()') ? 'ordered' : 'rows';
  });
}

const BALANCE_LIMITS = [
  'credit_ledger_amount_max',
  'credit_ledger_balance_after_max',
  'user_credits_balance_max',
  'user_credits_base_quota_max',
];

/**
 * Whether migration 1732300018000 is in place: the batch function that takes the gateway's hold
 * ids, and a ledger that accepts `void` rows.
 */
async function holdIdsInstalled(url: string): Promise<boolean> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ functions: number; voids: boolean }>(
      `SELECT (SELECT count(*)::int FROM pg_proc
                WHERE proname = 'credits_apply_batch' AND pronargs = 7) AS functions,
              (SELECT pg_get_constraintdef(oid) LIKE '%void%' FROM pg_constraint
                WHERE conname = 'credit_ledger_event_type_check') AS voids`,
    );
    return rows[0].functions === 1 && rows[0].voids;
  });
}

/** Which balance-limit CHECK constraints of migration 1732300016000 the database has. */
async function balanceLimits(url: string): Promise<string[]> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ name: string }>(
      'SELECT conname AS name FROM pg_constraint WHERE conname = ANY ($1) ORDER BY conname',
      [BALANCE_LIMITS],
    );
    return rows.map((r) => r.name);
  });
}

/** The default of the id column of the two tables every billed request writes to. */
async function idDefaults(url: string): Promise<Record<string, string>> {
  return withClient(url, async (c) => {
    const { rows } = await c.query<{ table_name: string; column_default: string }>(
      `SELECT table_name, column_default FROM information_schema.columns
        WHERE table_name IN ('credit_ledger', 'request_logs') AND column_name = 'id'`,
    );
    return Object.fromEntries(rows.map((r) => [r.table_name, r.column_default]));
  });
}

async function hasColumn(url: string, table: string, column: string): Promise<boolean> {
  return withClient(
    url,
    async (c) =>
      (
        await c.query(
          'SELECT 1 FROM information_schema.columns WHERE table_name = $1 AND column_name = $2',
          [table, column],
        )
      ).rowCount === 1,
  );
}

/** Resolves once some session waits for the migrations' advisory lock. */
async function someoneWaitsForMigrationLock(url: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const waiting = await withClient(
      url,
      async (c) =>
        (
          await c.query(
            `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND classid = 0 AND objid = $1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
            [MIGRATION_LOCK_ID],
          )
        ).rowCount ?? 0,
    );
    if (waiting > 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('nobody waited for the migration lock');
}

describe('migrate:revert', () => {
  let url: string;

  beforeEach(async () => {
    url = await createTestDatabase();
  });

  afterEach(async () => {
    await dropDatabase(url);
  });

  it('names the migration with --dry, reverts it, and migrate applies it again', async () => {
    const before = await appliedMigrations(url);
    const last = before[before.length - 1];
    expect(last).toBe('LedgerHoldIds1732300018000');
    expect(await holdIdsInstalled(url)).toBe(true);

    const dry = await cliInProcess(['migrate:revert', '--dry'], url);
    expect(dry).toEqual({ code: 0, out: `Would revert: ${last}\n` });
    expect(await appliedMigrations(url)).toEqual(before);

    const revert = await cliInProcess(['migrate:revert'], url);
    expect(revert.code).toBe(0);
    expect(revert.out).toContain(`Reverted ${last}.`);
    expect(await appliedMigrations(url)).toEqual(before.slice(0, -1));
    // Its down step ran: the hold-id function and void rows are gone, nothing else changed.
    expect(await holdIdsInstalled(url)).toBe(false);
    expect(await balanceLimits(url)).toEqual(BALANCE_LIMITS);
    expect(await ledgerBatchVersion(url)).toBe('ordered');

    // The balance limits' migration, then the one before it, whose down step swaps a function
    // and column defaults back.
    const limits = before[before.length - 2];
    expect(limits).toBe('BalanceLimit1732300016000');
    expect((await cliInProcess(['migrate:revert'], url)).out).toContain(`Reverted ${limits}.`);
    expect(await balanceLimits(url)).toEqual([]);
    const previous = before[before.length - 3];
    expect(previous).toBe('TimeOrderedIds1732300014000');
    const revertPrevious = await cliInProcess(['migrate:revert'], url);
    expect(revertPrevious.out).toContain(`Reverted ${previous}.`);
    expect(await appliedMigrations(url)).toEqual(before.slice(0, -3));
    // Its down step ran: the function is the one of the migration before, ids random again.
    expect(await ledgerBatchVersion(url)).toBe('rows');
    expect(await idDefaults(url)).toEqual({
      credit_ledger: 'gen_random_uuid()',
      request_logs: 'gen_random_uuid()',
    });

    const pending = (await cliInProcess(['migrate', '--dry'], url)).out;
    expect(pending).toContain(previous);
    expect(pending).toContain(limits);
    expect(pending).toContain(last);
    expect((await cliInProcess(['migrate'], url)).code).toBe(0);
    expect(await appliedMigrations(url)).toEqual(before);
    expect(await ledgerBatchVersion(url)).toBe('ordered');
    expect(await idDefaults(url)).toEqual({
      credit_ledger: 'uuid_v7()',
      request_logs: 'uuid_v7()',
    });
    expect(await balanceLimits(url)).toEqual(BALANCE_LIMITS);
    expect(await holdIdsInstalled(url)).toBe(true);
  });

  it('reverts and migrates on a pool of one connection (DB_POOL_MAX_SIZE=1)', async () => {
    // Both run on the connection that holds the migrations' lock; on a second one a pool of one
    // waited for itself until the connect timeout.
    const onePool = { DB_POOL_MAX_SIZE: '1', DB_CONNECT_TIMEOUT_MS: '3000' };
    const before = await appliedMigrations(url);
    const revert = await cliInProcess(['migrate:revert'], url, onePool);
    expect(revert.out).toContain(`Reverted ${before[before.length - 1]}.`);
    expect(await appliedMigrations(url)).toEqual(before.slice(0, -1));
    const migrate = await cliInProcess(['migrate'], url, onePool);
    expect(migrate).toEqual({
      code: 0,
      out: `Applied 1 migration(s):\n  ${before[before.length - 1]}\n`,
    });
    expect(await appliedMigrations(url)).toEqual(before);
  });

  it('reverts one migration per call and refuses the initial schema', async () => {
    const before = await appliedMigrations(url);
    for (let n = 1; n < before.length; n++)
      expect((await cliInProcess(['migrate:revert'], url)).code).toBe(0);
    expect(await appliedMigrations(url)).toEqual([before[0]]);

    const refused = await cliInProcess(['migrate:revert'], url);
    expect(refused.code).toBe(2);
    expect(refused.out).toContain('initial schema');
    expect(await appliedMigrations(url)).toEqual([before[0]]);
    expect(await hasColumn(url, 'credit_ledger', 'balance_after')).toBe(true);
  });

  it('refuses a last migration this version does not know (no down step here)', async () => {
    await withClient(url, (c) =>
      c.query(
        `INSERT INTO migrations (timestamp, name) VALUES (1999999999999, 'Future1999999999999')`,
      ),
    );
    const refused = await cliInProcess(['migrate:revert'], url);
    expect(refused.code).toBe(1);
    expect(refused.out).toContain('Future1999999999999 is not part of this version');
    expect(await ledgerBatchVersion(url)).toBe('ordered');
  });

  it('waits for the same advisory lock as runMigrationsLocked', async () => {
    const holder = new Client({ connectionString: url });
    await holder.connect();
    try {
      // A revert waits while the lock is held elsewhere …
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
      const reverting = cliInProcess(['migrate:revert'], url);
      await someoneWaitsForMigrationLock(url);
      expect(await holdIdsInstalled(url)).toBe(true);
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
      expect((await reverting).code).toBe(0);
      expect(await holdIdsInstalled(url)).toBe(false);

      // … and so does libs/database's migration runner, on the very same lock id.
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_ID]);
      const dataSource = createDataSource(url, loadConfig({ NODE_ENV: 'test' }).database);
      await dataSource.initialize();
      try {
        const migrating = runMigrationsLocked(dataSource);
        await someoneWaitsForMigrationLock(url);
        expect(await holdIdsInstalled(url)).toBe(false);
        await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_ID]);
        expect((await migrating).map((m) => m.name)).toEqual(['LedgerHoldIds1732300018000']);
        expect(await holdIdsInstalled(url)).toBe(true);
      } finally {
        await dataSource.destroy();
      }
    } finally {
      await holder.end();
    }
  });
});
