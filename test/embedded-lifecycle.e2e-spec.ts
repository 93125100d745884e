import { ChildProcess, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { exited, spawnUntil, StartedProcess } from './support/child-process';
import { freePort } from './support/free-port';
import { writeProvidersFile } from './support/mock-upstream';
import { waitFor } from './support/wait-for';

/**
 * The README's first start (no DATABASE_URL, no REDIS_URL) as real processes: the gateway runs
 * from its TypeScript sources with the embedded Postgres in a temporary EMBEDDED_PG_DIR on a free
 * EMBEDDED_PG_PORT. The tests run in order on one data directory, each building on the last, so
 * that there is one initdb in all (a Postgres start itself takes a fraction of a second).
 */
const ROOT = path.resolve(__dirname, '..');
const TS_REGISTER = path.join(ROOT, 'test/support/ts-register.js');
const GATEWAY_ARGS = ['-r', TS_REGISTER, 'apps/gateway/src/main.ts'];
const ERROR_LINE = /"level":("error"|"fatal"|50|60)/;

const work = mkdtempSync(path.join(tmpdir(), 'sy-embedded-'));
// Under root the embedded Postgres runs as the `postgres` user, which must reach its data dir.
chmodSync(work, 0o755);
const dataDir = path.join(work, 'pg');
/** A copy of the project's package.json whose dist/ entry point runs the TypeScript sources. */
const project = path.join(work, 'project');
const providersFile = writeProvidersFile(`
providers:
  - { name: mock, kind: mock, models: [mock-gpt], latency_ms: 3000 }
pricing:
  - { model: mock-gpt, per_request: 10 }
`);
let pgPort = 0;
let apiKey = '';
let viaNpm: (StartedProcess & { url: string }) | undefined;
const children: ChildProcess[] = [];

function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? work,
    NODE_ENV: 'development',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    LOG_SYNC: 'true',
    EMBEDDED_PG_DIR: dataDir,
    EMBEDDED_PG_PORT: String(pgPort),
    PROVIDERS_FILE: providersFile,
    SESSION_HEALTH_CHECK_INTERVAL: '3600',
    npm_config_update_notifier: 'false',
    ...extra,
  };
}

async function startGateway(
  command = process.execPath,
  args = GATEWAY_ARGS,
): Promise<StartedProcess & { url: string }> {
  const run = await spawnUntil(command, args, env(), /Switchyard listening/);
  children.push(run.child);
  const listening = run.line.slice(run.line.indexOf('{'));
  return { ...run, url: (JSON.parse(listening) as { url: string }).url };
}

/** A gateway that refuses to start: its exit code and what it wrote on stderr. */
function refusedStart(extra: Record<string, string>): { status: number | null; stderr: string } {
  const run = spawnSync(process.execPath, GATEWAY_ARGS, {
    cwd: ROOT,
    env: env(extra),
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: run.status, stderr: run.stderr };
}

/**
 * pids of the processes that belong to `dir`: named on their command line (the postmaster's -D)
 * or running in it (Postgres runs in its data dir, the gateway under npm in the project).
 */
function processesIn(dir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .filter((pid) => {
      try {
        const cwd = readlinkSync(`/proc/${pid}/cwd`);
        return cwd.startsWith(dir) || readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false; // gone meanwhile, or not ours to look at
      }
    })
    .map(Number);
}

function postmasterPid(): number | undefined {
  const file = path.join(dataDir, 'postmaster.pid');
  return existsSync(file) ? Number(readFileSync(file, 'utf8').split('\n')[0]) : undefined;
}

/** Running: not gone, and not a zombie (init here reaps an orphan's exit only after seconds). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** `npm run cli -- migrate --dry` from the sources; its logs go to stderr. */
function migrateDry(): { status: number | null; stdout: string; errors: string[] } {
  const cli = spawnSync(
    process.execPath,
    ['-r', TS_REGISTER, 'apps/cli/src/main.ts', 'migrate', '--dry'],
    { cwd: ROOT, env: env(), encoding: 'utf8', timeout: 60_000 },
  );
  return { status: cli.status, stdout: cli.stdout.trim(), errors: errorLines(cli.stderr) };
}

function errorLines(output: string): string[] {
  return output.split('\n').filter((line) => ERROR_LINE.test(line));
}

function chat(url: string, requestId: string): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${apiKey}`,
      'content-type': 'application/json',
      'x-request-id': requestId,
    },
    body: JSON.stringify({ model: 'mock-gpt', messages: [{ role: 'user', content: 'hi' }] }),
  });
}

/** Sends a slow chat completion, runs `signal` while it is in flight; the answer's status. */
async function signalDuringRequest(url: string, requestId: string, signal: () => void) {
  const pending = chat(url, requestId);
  await new Promise((resolve) => setTimeout(resolve, 1000)); // the mock answers after 3 s
  signal();
  return (await pending).status;
}

beforeAll(async () => {
  pgPort = await freePort();
  mkdirSync(path.join(project, 'scripts'), { recursive: true });
  mkdirSync(path.join(project, 'dist/apps/gateway/src'), { recursive: true });
  copyFileSync(path.join(ROOT, 'package.json'), path.join(project, 'package.json'));
  copyFileSync(
    path.join(ROOT, 'scripts/build-if-needed.js'),
    path.join(project, 'scripts/build-if-needed.js'),
  );
  writeFileSync(
    path.join(project, 'dist/apps/gateway/src/main.js'),
    `require(${JSON.stringify(TS_REGISTER)});\nrequire(${JSON.stringify(path.join(ROOT, 'apps/gateway/src/main.ts'))});\n`,
  );
});

afterAll(() => {
  // What a failed test left behind: the processes it started, and any Postgres of this data dir.
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const pid of processesIn(work)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited meanwhile
    }
  }
  rmSync(work, { recursive: true, force: true });
  rmSync(path.dirname(providersFile), { recursive: true, force: true });
});

describe('embedded mode: the gateway owns its Postgres', () => {
  const drained = `sy-embedded-sigterm-${Date.now()}`;

  it('finishes a request in flight when SIGTERM arrives and stops Postgres last, with no error line', async () => {
    const gateway = await startGateway();
    apiKey = /API key\s+:\s+(\S+)/.exec(gateway.output())?.[1] ?? '';
    expect(apiKey).toMatch(/^sk-/);

    const status = await signalDuringRequest(gateway.url, drained, () =>
      gateway.child.kill('SIGTERM'),
    );
    expect(status).toBe(200);
    expect(await exited(gateway.child)).toBe(0);
    const output = gateway.output();
    expect(output).toContain('shutdown complete');
    expect(output.indexOf('embedded Postgres stopped')).toBeGreaterThan(
      output.indexOf(`"request_id":"${drained}"`),
    );
    expect(errorLines(output)).toEqual([]);
    expect(processesIn(dataDir)).toEqual([]);
    expect(postmasterPid()).toBeUndefined();
  }, 120_000);

  it('settled the drained request; after a kill -9, `npm start` stops the orphaned Postgres and starts its own', async () => {
    const second = await startGateway();
    const ledger = await fetch(`${second.url}/v1/credits/ledger`, {
      headers: { authorization: `Bearer ${apiKey}` },
    });
    const body = (await ledger.json()) as { data: { event_type: string; request_id: string }[] };
    const events = body.data.filter((e) => e.request_id === drained).map((e) => e.event_type);
    expect(events.sort()).toEqual(['debit', 'settle']);
    const db = new Client({
      connectionString: `postgres://postgres:switchyard-embedded@127.0.0.1:${pgPort}/switchyard`,
    });
    await db.connect();
    try {
      const logged = await db.query('SELECT status_code FROM request_logs WHERE request_id = $1', [
        drained,
      ]);
      expect(logged.rows).toEqual([{ status_code: 200 }]);
    } finally {
      await db.end();
    }

    const orphan = postmasterPid() as number;
    second.child.kill('SIGKILL');
    await exited(second.child);
    expect(alive(orphan)).toBe(true); // nothing could stop it

    viaNpm = await startGateway('npm', ['--prefix', project, 'start']);
    expect(viaNpm.output()).toContain('stopping it to start our own');
    expect(alive(orphan)).toBe(false);
    expect(postmasterPid()).not.toBe(orphan);
  }, 120_000);

  it('refuses, in one line naming the port and the data directory, a port held by another data directory or another program', async () => {
    const otherDir = path.join(work, 'other-clone', 'pg');
    const shared = refusedStart({ EMBEDDED_PG_DIR: otherDir });
    expect(shared).toEqual({
      status: 1,
      stderr:
        `config error: EMBEDDED_PG_PORT: port ${pgPort} on 127.0.0.1 is in use by another program, ` +
        `not by the embedded Postgres of ${otherDir}; stop that program or set EMBEDDED_PG_PORT to a free port\n`,
    });
    expect(existsSync(otherDir)).toBe(false);

    const squatter = createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const port = (squatter.address() as { port: number }).port;
    try {
      const other = refusedStart({ EMBEDDED_PG_PORT: String(port) });
      expect(other.status).toBe(1);
      expect(other.stderr).toBe(
        `config error: EMBEDDED_PG_PORT: port ${port} on 127.0.0.1 is in use by another program, ` +
          `not by the embedded Postgres of ${dataDir}; stop that program or set EMBEDDED_PG_PORT to a free port\n`,
      );
    } finally {
      await new Promise((resolve) => squatter.close(resolve));
    }
  }, 120_000);

  it('lets a CLI command beside the running gateway use its Postgres and leave it running', () => {
    const running = postmasterPid() as number;
    expect(migrateDry()).toEqual({ status: 0, stdout: 'No pending migrations.', errors: [] });
    expect(alive(running)).toBe(true);
    expect(postmasterPid()).toBe(running);
  }, 120_000);

  it('passes a SIGTERM sent to npm on to the gateway, which drains and then stops its Postgres', async () => {
    const gateway = viaNpm as StartedProcess & { url: string };
    const status = await signalDuringRequest(gateway.url, `${drained}-npm`, () =>
      gateway.child.kill('SIGTERM'),
    );
    expect(status).toBe(200);
    // Without exec, npm's SIGTERM reached only `sh -c`, which died alone: the gateway kept serving.
    await waitFor(() => processesIn(project).length === 0, 20_000, 'the gateway under npm to exit');
    expect(await exited(gateway.child)).toBe(0);
    expect(gateway.output()).toContain('shutdown complete');
    expect(errorLines(gateway.output())).toEqual([]);
    expect(processesIn(dataDir)).toEqual([]);
  }, 120_000);

  it('runs a CLI command on its own Postgres, started and stopped without an error line', () => {
    expect(migrateDry()).toEqual({ status: 0, stdout: 'No pending migrations.', errors: [] });
    expect(processesIn(dataDir)).toEqual([]);
  }, 120_000);

  it('drains on Ctrl-C as well: the terminal signals its foreground group, which Postgres is not in', async () => {
    // setsid: the gateway leads its own process group, as a shell's foreground job does.
    const gateway = await startGateway('setsid', [process.execPath, ...GATEWAY_ARGS]);
    const group = gateway.child.pid as number;
    const status = await signalDuringRequest(gateway.url, `${drained}-ctrl-c`, () =>
      process.kill(-group, 'SIGINT'),
    );
    expect(status).toBe(200);
    expect(await exited(gateway.child)).toBe(0);
    expect(gateway.output()).toContain('shutdown complete');
    expect(errorLines(gateway.output())).toEqual([]);
    expect(processesIn(dataDir)).toEqual([]);
  }, 120_000);
});
