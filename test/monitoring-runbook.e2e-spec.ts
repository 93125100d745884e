import { adminToken } from './support/auth-factory';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { runCli } from '../apps/cli/src/main';
import { startGateway, TestGateway } from './support/gateway';
import { testEnv, withDatabase } from './support/test-env';
import {
  bash,
  CI,
  commandLines,
  repoFile,
  requireToolOrSkip,
  ROOT,
  stripComment,
} from './monitoring.helpers';

/**
 * The runbook cannot drift from the code: every command line of its alert and operational
 * sections (everything before "## Module procedures", which module owners test themselves) is
 * either run here against a live gateway and its database — with the placeholders filled from
 * this test's fixtures — or explicitly recognised as needing docker/kubectl, which the tests do
 * not have. A new kind of command makes the classification test fail until it is handled.
 */

const RUNBOOK = repoFile('docs/runbook.md');
const OWN_PART = RUNBOOK.slice(0, RUNBOOK.indexOf('## Module procedures'));

type Kind =
  | 'variable'
  | 'comment'
  | 'not-here'
  | 'psql'
  | 'backup'
  | 'metrics-grep'
  | 'curl'
  | 'prometheus'
  | 'scripts'
  | 'cli';

function classify(line: string): Kind | undefined {
  // scripts/backup.sh and restore.sh: run end to end by test/backup-scripts.e2e-spec.ts.
  if (/^(DATABASE_URL="[^"]*" )?scripts\/(backup|restore)\.sh /.test(line)) return 'scripts';
  if (/^(SY|PROM|DATABASE_URL|REDIS_URL)=/.test(line)) return 'variable';
  if (line.startsWith('#')) return 'comment';
  if (/^(docker |kubectl |git checkout )/.test(line)) return 'not-here';
  // The public HTTPS address in front of the gateway (CertificateExpiringSoon): none here.
  if (/^echo \| openssl s_client /.test(line)) return 'not-here';
  if (line.startsWith('curl -s "$PROM/')) return 'prometheus'; // run by monitoring-live
  if (/^(pg_dump |pg_restore |createdb |find \/backups )/.test(line)) return 'backup';
  // The restored database's URL, derived from DATABASE_URL (query string kept), and its checks.
  if (line.startsWith('RESTORE_URL=$(printf %s "$DATABASE_URL" | sed ')) return 'backup';
  if (line.startsWith('psql "$RESTORE_URL" ')) return 'backup';
  if (line.startsWith('psql "$DATABASE_URL" ')) return 'psql';
  if (/^curl -s \$SY\/metrics \| grep /.test(line)) return 'metrics-grep';
  if (/^curl [^|]*\$SY\//.test(line)) return 'curl';
  if (line.startsWith('npm run cli -- ')) return 'cli';
  return undefined;
}

/** 'a_(b|c)|^d' → ['a_b', 'a_c', 'd']: the names a simple grep pattern stands for. */
function expandPattern(pattern: string): string[] {
  const alternatives: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === '(') depth++;
    else if (pattern[i] === ')') depth--;
    else if (pattern[i] === '|' && depth === 0) {
      alternatives.push(pattern.slice(start, i));
      start = i + 1;
    }
  }
  alternatives.push(pattern.slice(start));
  return alternatives.flatMap((alt) => {
    const clean = alt.replace(/^\^/, '');
    const group = /\(([^()]*)\)/.exec(clean);
    if (!group) return [clean];
    return group[1].split('|').flatMap((option) => expandPattern(clean.replace(group[0], option)));
  });
}

function grepPattern(line: string): string {
  const match = /grep (?:-E )?(?:-i )?'([^']+)'/.exec(line);
  if (!match) throw new Error(`no grep pattern in: ${line}`);
  return match[1];
}

const lines = commandLines(OWN_PART);
const ofKind = (kind: Kind) => lines.filter((line) => classify(line) === kind);

describe('runbook: every command line is recognised', () => {
  it('classifies each command of the alert and procedure sections', () => {
    expect(lines.length).toBeGreaterThan(40);
    expect(lines.filter((line) => classify(line) === undefined)).toEqual([]);
    // The kinds this suite runs are all present, so a rename cannot silently empty one.
    for (const kind of ['psql', 'backup', 'metrics-grep', 'curl', 'cli'] as Kind[])
      expect({ kind, count: ofKind(kind).length > 0 }).toEqual({ kind, count: true });
  });

  it('greps logs only for messages the code writes', () => {
    const sources: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir)) {
        const full = path.join(dir, entry);
        if (statSync(full).isDirectory()) walk(full);
        else if (full.endsWith('.ts') && !full.endsWith('.spec.ts'))
          sources.push(readFileSync(full, 'utf8'));
      }
    };
    walk(path.join(ROOT, 'libs'));
    walk(path.join(ROOT, 'apps'));
    const code = sources.join('\n');
    const missing: string[] = [];
    for (const line of lines.filter((l) => / logs .*\| grep /.test(l))) {
      const pattern = grepPattern(line);
      // A JSON field ("level":"error", "request_id":…): the field name must be one we log.
      const field = /^"(\w+)":/.exec(pattern);
      if (field) {
        if (!code.includes(field[1])) missing.push(`field ${field[1]} (${line})`);
        continue;
      }
      for (const message of expandPattern(pattern))
        if (!code.includes(message)) missing.push(`${message} (${line})`);
    }
    expect(missing).toEqual([]);
  });
});

const psql = requireToolOrSkip('psql', 'postgresql-client');
const jq = requireToolOrSkip('jq', 'jq');
const pgDump = requireToolOrSkip('pg_dump', 'postgresql-client');

(psql && jq && pgDump ? describe : describe.skip)(
  'runbook: commands against a live gateway',
  () => {
    let gw: TestGateway;
    let requestId = '';
    // Admin commands in the runbook read $TOKEN, as an operator's shell would after logging in.
    let adminJwt = '';
    const bootKey = `sk-sy-runbook${randomBytes(12).toString('hex')}`;
    const env = () => ({ SY: gw.url, DATABASE_URL: gw.databaseUrl, TOKEN: adminJwt });
    const fill = (line: string) => line.replace(/REQUEST_ID/g, requestId);

    beforeAll(async () => {
      gw = await startGateway({ env: { API_KEYS: bootKey } });
      adminJwt = (await adminToken(gw)).token;
      const auth = { authorization: `Bearer ${bootKey}`, 'content-type': 'application/json' };
      await fetch(`${gw.url}/v1/models`, { headers: auth });
      await fetch(`${gw.url}/v1/models`); // an authentication failure
      const chat = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ model: 'mock-gpt', messages: [{ role: 'user', content: 'hi' }] }),
      });
      requestId = chat.headers.get('x-request-id') ?? '';
      expect(requestId).not.toBe('');
      // Request logs are written in batches off the hot path.
      const client = new Client({ connectionString: gw.databaseUrl });
      await client.connect();
      try {
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          const { rowCount } = await client.query(
            'SELECT 1 FROM request_logs WHERE request_id = $1',
            [requestId],
          );
          if (rowCount) break;
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        await client.end();
      }
    });

    afterAll(async () => {
      await gw?.close();
    });

    it('runs every psql command without error', async () => {
      const failures: string[] = [];
      for (const line of ofKind('psql')) {
        const result = await bash(fill(line), env());
        if (result.status !== 0) failures.push(`${line}\n  ${result.stderr.trim()}`);
      }
      expect(failures).toEqual([]);
      // The request-id lookup finds the request the fixture made.
      const lookup = ofKind('psql').find((l) => l.includes("request_id = 'REQUEST_ID'")) as string;
      expect((await bash(fill(lookup), env())).stdout).toContain('/v1/chat/completions');
    });

    it('runs every curl command against the gateway', async () => {
      const failures: string[] = [];
      for (const line of ofKind('curl')) {
        const result = await bash(fill(stripComment(line)), env());
        // Listing what is not "up" legitimately prints nothing on a healthy gateway.
        const mayBeEmpty = line.includes('select(.status != "up")');
        if (result.status !== 0 || (!mayBeEmpty && !result.stdout.trim()))
          failures.push(`${line}\n  exit ${result.status}: ${result.stderr.trim()}`);
      }
      expect(failures).toEqual([]);
    });

    it('greps /metrics only for metrics the gateway registers', async () => {
      const text = await (await fetch(`${gw.url}/metrics`)).text();
      const registered = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
      const missing: string[] = [];
      for (const line of ofKind('metrics-grep'))
        for (const name of expandPattern(grepPattern(line)))
          if (!registered.has(name)) missing.push(`${name} (${line})`);
      expect(missing).toEqual([]);
    });

    it('runs the CLI commands it names', async () => {
      const out: string[] = [];
      const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
        out.push(String(chunk));
        return true;
      });
      try {
        for (const line of ofKind('cli')) {
          const args = stripComment(line).replace('npm run cli -- ', '').split(/\s+/);
          const code = await runCli(args, {
            ...process.env,
            NODE_ENV: 'test',
            DATABASE_URL: gw.databaseUrl,
            LOG_LEVEL: 'warn',
          });
          expect({ line, code }).toEqual({ line, code: 0 });
        }
      } finally {
        spy.mockRestore();
      }
      expect(out.join('')).toContain('No pending migrations.');
    });

    it('backs up with pg_dump, restores into a new database, and the ledger is intact', async () => {
      const server = new Client({ connectionString: gw.databaseUrl });
      await server.connect();
      const serverMajor = Math.floor(
        Number((await server.query('SHOW server_version_num')).rows[0].server_version_num) / 10000,
      );
      const source = (
        await server.query(
          'SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM credit_ledger) AS ledger',
        )
      ).rows[0];
      await server.end();
      const clientMajor = Number(/(\d+)/.exec((await bash('pg_dump --version', {})).stdout)?.[1]);
      if (clientMajor < serverMajor) {
        const message = `pg_dump ${clientMajor} cannot dump a Postgres ${serverMajor} server`;
        if (CI) throw new Error(message);
        process.stderr.write(`\n[SKIPPED] ${message}: backup/restore commands not run\n\n`);
        return;
      }
      expect(Number(source.ledger)).toBeGreaterThan(0); // the bootstrap grant at least

      const dir = mkdtempSync(path.join(tmpdir(), 'sy-backup-'));
      const restored = `sy_restored_${randomBytes(4).toString('hex')}`;
      const procedure = ofKind('backup');
      try {
        let dumpFile = '';
        // Assignments (RESTORE_URL=…) stay in force for the lines after them, as in a shell.
        let assignments = '';
        const outputs: string[] = [];
        for (const line of procedure) {
          const command = stripComment(line)
            .replace(/switchyard-YYYYMMDD-HHMMSS\.dump/g, dumpFile)
            .replace(/switchyard_restored/g, restored)
            .replace(/\/backups/g, dir);
          if (/^[A-Z_]+=/.test(command)) {
            assignments += `${command}\n`;
            outputs.push('');
            continue;
          }
          const result = await bash(assignments + command, env(), dir);
          if (result.status !== 0)
            throw new Error(`${command}\n  exit ${result.status}: ${result.stderr}`);
          outputs.push(result.stdout);
          dumpFile ||= readdirSync(dir).find((f) => /^switchyard-\d{8}-\d{6}\.dump$/.test(f)) ?? '';
        }
        expect(dumpFile).not.toBe('');
        expect(procedure.some((l) => l.startsWith('createdb '))).toBe(true);
        const copy = new Client({
          connectionString: withDatabase(testEnv.adminDatabaseUrl, restored),
        });
        await copy.connect();
        try {
          const counts = (
            await copy.query(
              'SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM credit_ledger) AS ledger',
            )
          ).rows[0];
          expect(counts).toEqual(source);
        } finally {
          await copy.end();
        }
        // The runbook's own check prints mismatched = 0.
        const check = outputs[procedure.findIndex((l) => l.includes('AS mismatched'))];
        expect(check).toMatch(/mismatched\s*\n-+\n\s*0\s*\n/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
        const admin = new Client({ connectionString: testEnv.adminDatabaseUrl });
        await admin.connect();
        await admin.query(`DROP DATABASE IF EXISTS ${restored} WITH (FORCE)`);
        await admin.end();
      }
    });
  },
);
