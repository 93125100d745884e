import { ChildProcess, spawn } from 'node:child_process';
import { freePort } from './support/free-port';
import path from 'node:path';
import { Client } from 'pg';
import { newConsumer, TestConsumer } from './support/auth-factory';
import { startGateway, TestGateway, uniqueRedisPrefix } from './support/gateway';
import { MockUpstream } from './support/mock-upstream';
import { testEnv } from './support/test-env';
import {
  balance,
  call,
  CHAT_COST,
  chatJob,
  FAST_QUEUE,
  metric,
  providersFile,
  waitFor,
  waitForStatus,
  WsClient,
} from './jobs-helpers';

const ROOT = path.resolve(__dirname, '..');

/** A real `worker` process (the TypeScript sources, no build) that a test can SIGKILL. */
class WorkerProcess {
  readonly lines: string[] = [];
  private child?: ChildProcess;
  private exited?: Promise<void>;

  url = '';

  constructor(private readonly env: Record<string, string>) {}

  async start(): Promise<this> {
    const port = await freePort();
    this.env.WORKER_PORT = String(port);
    this.url = `http://127.0.0.1:${port}`;
    this.child = spawn(
      process.execPath,
      [
        '-r',
        path.join(ROOT, 'test/support/ts-register.js'),
        path.join(ROOT, 'apps/gateway/src/worker.ts'),
      ],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', ...this.env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const collect = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (line) this.lines.push(line);
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) => this.child!.once('exit', () => resolve()));
    await waitFor(
      () =>
        this.lines.some((l) => l.includes('job workers started')) || this.child!.exitCode !== null,
      30_000,
      'worker process start',
    );
    if (this.child.exitCode !== null) throw new Error(`worker exited:\n${this.lines.join('\n')}`);
    return this;
  }

  /** The crash under test: no shutdown hook runs, the job stays claimed by a dead worker. */
  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (!this.child || this.child.exitCode !== null) return;
    this.child.kill('SIGTERM');
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 10_000))]);
    this.child.kill('SIGKILL');
  }
}

describe('jobs across replicas and worker processes', () => {
  const upstream = new MockUpstream('primary');
  const prefix = uniqueRedisPrefix();
  let file: string;
  let api: TestGateway;
  let pg: Client;
  let consumer: TestConsumer;
  const workers: WorkerProcess[] = [];

  // Short visibility timeout so a lost job comes back within seconds.
  const queueEnv = { ...FAST_QUEUE, JOB_VISIBILITY_TIMEOUT_SECONDS: '5', JOB_MAX_ATTEMPTS: '2' };

  function workerEnv(): Record<string, string> {
    return {
      NODE_ENV: 'test',
      LOG_LEVEL: 'info',
      DATABASE_URL: api.databaseUrl,
      REDIS_URL: testEnv.redisUrl ?? '',
      REDIS_KEY_PREFIX: prefix,
      PROVIDERS_FILE: file,
      JWT_SECRET: 'test-jwt-secret-that-is-long-enough-0123456789',
      SESSION_ENCRYPTION_KEY: 'a'.repeat(64),
      SESSION_HEALTH_CHECK_INTERVAL: '3600',
      SHUTDOWN_GRACE_MS: '2000',
      ...queueEnv,
    };
  }

  async function startWorker(): Promise<WorkerProcess> {
    const worker = await new WorkerProcess(workerEnv()).start();
    workers.push(worker);
    return worker;
  }

  beforeAll(async () => {
    if (!testEnv.redisUrl) throw new Error('Redis is required for cross-replica delivery');
    await upstream.start();
    file = providersFile(upstream.url);
    // The API replica runs no workers: every job here runs on another replica or process.
    api = await startGateway({
      env: {
        PROVIDERS_FILE: file,
        REDIS_KEY_PREFIX: prefix,
        JOB_WORKER_ENABLED: 'false',
        ...queueEnv,
      },
    });
    pg = new Client({ connectionString: api.databaseUrl });
    await pg.connect();
    consumer = await newConsumer(api, { credits: 1000 });
  });
  afterAll(async () => {
    for (const worker of workers) await worker.stop();
    await pg?.end();
    await api?.close();
    await upstream.stop();
  });
  beforeEach(() => upstream.reset());

  describe('with a second gateway replica running the workers', () => {
    let runner: TestGateway;
    beforeAll(async () => {
      runner = await startGateway({
        databaseUrl: api.databaseUrl,
        env: { PROVIDERS_FILE: file, REDIS_KEY_PREFIX: prefix, ...queueEnv },
      });
    });
    afterAll(async () => {
      await runner?.close();
    });

    it('a socket on replica A hears about a job that replica B ran', async () => {
      const onA = await WsClient.for(api, consumer.key).ready();
      const submitted = await call(api, 'POST', '/v1/generations', consumer.key, chatJob());
      const id = submitted.body.id;
      const done = await onA.next((m) => m.id === id && m.status === 'succeeded');
      expect(done.result.object).toBe('chat.completion');
      expect(onA.jobEvents(id).map((m) => m.status)).toEqual([
        'pending',
        'generating',
        'succeeded',
      ]);
      expect(runner.logText()).toContain(id);
      expect(api.logText()).not.toContain('"msg":"generation job succeeded"');
      onA.close();
    });

    it('a cancel on replica A aborts the upstream call running on replica B', async () => {
      upstream.always({ mode: 'ok', delayMs: 5_000 });
      const onB = await WsClient.for(runner, consumer.key).ready();
      const submitted = await call(api, 'POST', '/v1/generations', consumer.key, chatJob());
      const id = submitted.body.id;
      await upstream.waitFor(() => upstream.count === 1);
      expect((await call(api, 'DELETE', `/v1/generations/${id}`, consumer.key)).status).toBe(200);
      await onB.next((m) => m.id === id && m.status === 'cancelled');
      await upstream.waitFor(() => upstream.aborted === 1);
      onB.close();
    });

    it('fails and refunds an attempt that outlives the visibility timeout, without running it twice', async () => {
      upstream.always({ mode: 'hang' });
      const start = await balance(api, consumer.key);
      const submitted = await call(api, 'POST', '/v1/generations', consumer.key, chatJob('slow'));
      const failed = await waitForStatus(api, consumer.key, submitted.body.id, ['failed'], 15_000);
      expect(failed.error).toBe('generation took longer than JOB_VISIBILITY_TIMEOUT_SECONDS (5 s)');
      await waitFor(async () => (await balance(api, consumer.key)) === start, 5000, 'refund');
      await new Promise((r) => setTimeout(r, 3000));
      expect(upstream.count).toBe(1);
      expect(
        (await call(api, 'GET', `/v1/generations/${submitted.body.id}`, consumer.key)).body.status,
      ).toBe('failed');
    });

    it('registers the daily retention as a cluster-wide pg-boss schedule', async () => {
      const rows = await pg.query(`SELECT name, cron, options FROM pgboss.schedule`);
      expect(rows.rows).toEqual([
        expect.objectContaining({ name: 'maintenance-retention', cron: '15 3 * * *' }),
      ]);
    });
  });

  it('a job whose worker process dies is picked up again after the visibility timeout and charged once', async () => {
    const start = await balance(api, consumer.key);
    const ws = await WsClient.for(api, consumer.key).ready();
    // First attempt: the upstream never answers, and the worker is killed mid-call.
    upstream.next({ mode: 'hang' });
    const first = await startWorker();
    const submitted = await call(api, 'POST', '/v1/generations', consumer.key, chatJob('crash'));
    const id = submitted.body.id;
    await upstream.waitFor(() => upstream.count === 1, 20_000);
    await first.kill();
    expect((await call(api, 'GET', `/v1/generations/${id}`, consumer.key)).body.status).toBe(
      'generating',
    );

    const second = await startWorker();
    const done = await waitForStatus(api, consumer.key, id, ['succeeded'], 30_000);
    expect(done.attempts).toBe(2);
    expect(done.credits_charged).toBe(CHAT_COST);
    expect(upstream.count).toBe(2);
    await ws.next((m) => m.id === id && m.status === 'succeeded');
    expect(ws.jobEvents(id).map((m) => m.status)).toEqual([
      'pending',
      'generating',
      'generating',
      'succeeded',
    ]);
    ws.close();

    expect(await balance(api, consumer.key)).toBe(start - CHAT_COST);
    const ledger = await pg.query(
      `SELECT event_type, amount FROM credit_ledger WHERE user_id = $1 AND request_id = $2`,
      [consumer.userId, submitted.headers.get('x-request-id')],
    );
    expect(ledger.rows.filter((r) => r.event_type === 'debit')).toHaveLength(1);
    expect(ledger.rows.reduce((sum, r) => sum + Number(r.amount), 0)).toBe(-CHAT_COST);

    // The worker process is observable on its own port: metrics of what it ran, probes.
    const metrics = await (await fetch(`${second.url}/metrics`)).text();
    expect(
      metric(metrics, 'gateway_generation_jobs_total', { type: 'chat', outcome: 'retried' }),
    ).toBe(1);
    expect(
      metric(metrics, 'gateway_generation_jobs_total', { type: 'chat', outcome: 'succeeded' }),
    ).toBe(1);
    expect((await fetch(`${second.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${second.url}/health/ready`)).status).toBe(200);
    for (const worker of workers.splice(0)) await worker.stop();
    expect(second.lines.some((l) => l.includes('worker shutdown complete'))).toBe(true);
  }, 90_000);

  it('a job that loses its worker on every attempt fails and is refunded', async () => {
    const start = await balance(api, consumer.key);
    upstream.always({ mode: 'hang' });
    const first = await startWorker();
    const submitted = await call(api, 'POST', '/v1/generations', consumer.key, chatJob('doomed'));
    const id = submitted.body.id;
    await upstream.waitFor(() => upstream.count === 1, 20_000);
    await first.kill();
    const second = await startWorker();
    await upstream.waitFor(() => upstream.count === 2, 30_000);
    await second.kill();
    await startWorker();
    const failed = await waitForStatus(api, consumer.key, id, ['failed'], 30_000);
    expect(failed.error).toBe('worker lost the job on every attempt');
    expect(failed.attempts).toBe(2);
    expect(upstream.count).toBe(2);
    await waitFor(async () => (await balance(api, consumer.key)) === start, 10_000, 'refund');
    for (const worker of workers.splice(0)) await worker.stop();
  }, 120_000);
});
