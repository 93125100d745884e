import { ChildProcess, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '@app/config';
import { exited, spawnUntil } from './support/child-process';
import { createTestDatabase, dropDatabase } from './support/gateway';

const ROOT = path.resolve(__dirname, '..');
const TS_REGISTER = path.join(ROOT, 'test/support/ts-register.js');

/** Runs `script` in a node process whose stdout is a file; returns what the script printed on stderr. */
function withStdoutFile(script: string): { stdout: string; stderr: string; status: number | null } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sy-log-'));
  const file = path.join(dir, 'stdout');
  const fd = openSync(file, 'w');
  try {
    const run = spawnSync(process.execPath, ['-r', TS_REGISTER, '-e', script], {
      cwd: ROOT,
      env: { ...process.env, SY_STDOUT_FILE: file },
      stdio: ['ignore', fd, 'pipe'],
      encoding: 'utf8',
    });
    return { stdout: readFileSync(file, 'utf8'), stderr: run.stderr, status: run.status };
  } finally {
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('logging: the stdout destination', () => {
  it('LOG_SYNC parses as a boolean, off by default, and names itself when invalid', () => {
    expect(loadConfig({}).logging.sync).toBe(false);
    expect(loadConfig({ LOG_SYNC: 'true' }).logging.sync).toBe(true);
    expect(() => loadConfig({ LOG_SYNC: 'sometimes' })).toThrow(/LOG_SYNC/);
  });

  it('a synchronous destination has the line in the file when write returns', () => {
    const script = `
      const { readFileSync } = require('node:fs');
      const { stdoutDestination } = require('./libs/observability/src/logger');
      const destination = stdoutDestination(true);
      destination.write('{"msg":"one"}\\n');
      process.stderr.write(readFileSync(process.env.SY_STDOUT_FILE, 'utf8'));
    `;
    const run = withStdoutFile(script);
    expect(run.status).toBe(0);
    expect(run.stderr).toBe('{"msg":"one"}\n');
  });

  it('an asynchronous destination has every line in the file once the process has exited', () => {
    const script = `
      const { stdoutDestination } = require('./libs/observability/src/logger');
      const destination = stdoutDestination(false);
      for (let i = 0; i < 1000; i++) destination.write(JSON.stringify({ i }) + '\\n');
    `;
    const run = withStdoutFile(script);
    expect(run.status).toBe(0);
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(1000);
    expect(JSON.parse(lines[999])).toEqual({ i: 999 });
  });
});

describe('logging: a gateway process with LOG_SYNC=true', () => {
  let databaseUrl: string;
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase();
  });
  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await dropDatabase(databaseUrl);
  });

  it('writes its start line and one access line per request to stdout, and stops cleanly', async () => {
    const started = await spawnUntil(
      process.execPath,
      ['-r', TS_REGISTER, 'apps/gateway/src/main.ts'],
      {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'test',
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
        LOG_SYNC: 'true',
        DATABASE_URL: databaseUrl,
        SESSION_HEALTH_CHECK_INTERVAL: '3600',
      },
      /Switchyard listening/,
    );
    child = started.child;
    const url = (JSON.parse(started.line) as { url: string }).url;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}/v1/models`, { headers: { 'x-request-id': `sync-${i}` } });
      expect(res.status).toBe(401);
    }
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);

    const lines = started
      .stdout()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect({
      listening: lines.some((l) => l.msg === 'Switchyard listening'),
      stderr: started.stderr(),
    }).toEqual({ listening: true, stderr: '' });
    const access = lines.filter(
      (l) => l.msg === 'request completed' && String(l.request_id).startsWith('sync-'),
    );
    expect(access.map((l) => [l.request_id, l.status, l.route])).toEqual([
      ['sync-0', 401, '/v1/models'],
      ['sync-1', 401, '/v1/models'],
      ['sync-2', 401, '/v1/models'],
    ]);
  }, 90_000);
});
