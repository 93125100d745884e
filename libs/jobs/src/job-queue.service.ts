import { Inject, Injectable } from '@nestjs/common';
import PgBoss from 'pg-boss';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { DatabaseService, Queryable } from '@app/database';
import { ApiError, LOGGER } from '@app/observability';
import { JobPrincipal } from './job-executor';
import { guardPgBossCompletions } from './pg-boss-completion-guard';

/** pg-boss queue names (rows in pgboss.queue; operators see them in pgboss.job). */
export const GENERATION_QUEUE = 'generation';
/** Where pg-boss moves a generation job whose every attempt was lost with its worker. */
export const GENERATION_DEAD_QUEUE = 'generation-dead';
export const RETENTION_QUEUE = 'maintenance-retention';

const PGBOSS_SCHEMA = 'pgboss';
const ERROR_LOG_EVERY_MS = 30_000;

export interface GenerationMessage {
  jobId: string;
  principal?: JobPrincipal;
}

export interface DeliveredJob {
  jobId: string;
  principal?: JobPrincipal;
  /** 0 on the first delivery; > 0 when an earlier worker lost the job (timeout, crash). */
  retryCount: number;
}

type QueueState = 'idle' | 'starting' | 'running' | 'failed' | 'stopped';

const DEADLOCK_ATTEMPTS = 5;

/**
 * pg-boss's create_queue takes no lock of its own: replicas that boot together on a new
 * database create the same queue partitions at once, and Postgres aborts one of them as a
 * deadlock (40P01). That replica was left with no queue and no workers until restarted. The
 * other one finishes the queue, so the aborted step succeeds when tried again.
 */
async function retryOnDeadlock(step: () => Promise<unknown>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await step();
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== '40P01' || attempt >= DEADLOCK_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 100));
    }
  }
}

/**
 * The durable queue: pg-boss on the same Postgres (its own `pgboss` schema and connection pool).
 * generation_jobs stays the record operators and clients read; pg-boss only decides which worker
 * runs a job next, hands a job held too long by a silent worker (JOB_VISIBILITY_TIMEOUT_SECONDS)
 * to another one, and fires cluster-wide cron schedules once per slot.
 */
@Injectable()
export class JobQueue {
  private boss?: PgBoss;
  private starting?: Promise<PgBoss>;
  private state: QueueState = 'idle';
  private lastError?: string;
  private lastErrorLoggedAt = 0;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly database: DatabaseService,
  ) {}

  get status(): { state: QueueState; lastError?: string } {
    return { state: this.state, lastError: this.lastError };
  }

  /** Starts pg-boss once (installing or upgrading its schema); later calls share the result. */
  start(): Promise<PgBoss> {
    this.starting ??= this.boot().catch((err) => {
      this.state = 'failed';
      this.lastError = (err as Error).message;
      this.starting = undefined;
      throw err;
    });
    return this.starting;
  }

  private async boot(): Promise<PgBoss> {
    this.state = 'starting';
    const jobs = this.config.jobs;
    const background = this.config.backgroundTasks;
    const url = (this.database.rawDataSource.options as { url?: string }).url;
    if (!url) throw new Error('job queue: the database URL is unknown');
    const boss = new PgBoss({
      connectionString: url,
      schema: PGBOSS_SCHEMA,
      application_name: 'switchyard-jobs',
      // One connection per worker loop plus room for sends, maintenance and schedules.
      max: jobs.concurrency + 4,
      migrate: true,
      // Maintenance re-queues jobs whose worker went silent; schedules fire the daily retention.
      // Both coordinate through pg-boss's own locks, so every replica may run them.
      supervise: background,
      schedule: background,
      maintenanceIntervalSeconds: jobs.maintenanceIntervalSeconds,
    });
    boss.on('error', (err: Error) => this.reportError(err));
    guardPgBossCompletions((err, method) =>
      this.reportError(new Error(`${method} not recorded: ${(err as Error).message}`)),
    );
    await boss.start();
    try {
      await this.declareQueues(boss);
    } catch (err) {
      // A half-started instance would keep its timers and pool; a later start makes a new one.
      await boss.stop({ graceful: false, wait: false, close: true }).catch(() => undefined);
      throw err;
    }
    this.boss = boss;
    this.state = 'running';
    this.lastError = undefined;
    this.logger.info(
      {
        concurrency: jobs.concurrency,
        visibilityTimeoutSeconds: jobs.visibilityTimeoutSeconds,
        maxAttempts: jobs.maxAttempts,
      },
      'job queue started (pg-boss)',
    );
    return boss;
  }

  private async declareQueues(boss: PgBoss): Promise<void> {
    const jobs = this.config.jobs;
    await retryOnDeadlock(() =>
      boss.createQueue(GENERATION_DEAD_QUEUE, { name: GENERATION_DEAD_QUEUE }),
    );
    const generation: PgBoss.Queue = {
      name: GENERATION_QUEUE,
      policy: 'standard',
      retryLimit: jobs.maxAttempts - 1,
      retryDelay: 0,
      expireInSeconds: jobs.visibilityTimeoutSeconds,
      deadLetter: GENERATION_DEAD_QUEUE,
    };
    await retryOnDeadlock(() => boss.createQueue(GENERATION_QUEUE, generation));
    // createQueue keeps the settings of an existing queue; apply the current configuration.
    await retryOnDeadlock(() => boss.updateQueue(GENERATION_QUEUE, generation));
    await retryOnDeadlock(() =>
      boss.createQueue(RETENTION_QUEUE, {
        name: RETENTION_QUEUE,
        policy: 'standard',
        retryLimit: 2,
        retryDelay: 60,
        expireInSeconds: 3600,
      }),
    );
  }

  private reportError(err: Error): void {
    this.lastError = err.message;
    // A database outage makes every worker loop fail every poll: log the first and then
    // at most one line per 30 s.
    const now = Date.now();
    if (now - this.lastErrorLoggedAt < ERROR_LOG_EVERY_MS) return;
    this.lastErrorLoggedAt = now;
    this.logger.warn({ err: err.message }, 'job queue error');
  }

  private async running(): Promise<PgBoss> {
    if (this.state === 'stopped')
      throw ApiError.unavailable('The job queue is shutting down', 'service_unavailable');
    try {
      return await this.start();
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, 'job queue unavailable');
      throw ApiError.unavailable('The job queue is unavailable', 'service_unavailable');
    }
  }

  /**
   * Enqueues a generation job inside the caller's transaction, so the generation_jobs row and
   * the queue entry commit (or vanish) together. The pg-boss id is the job's id.
   */
  async enqueue(tx: Queryable, jobId: string, principal: JobPrincipal): Promise<void> {
    const boss = await this.running();
    const jobs = this.config.jobs;
    await boss.send(GENERATION_QUEUE, { jobId, principal } satisfies GenerationMessage, {
      id: jobId,
      retryLimit: jobs.maxAttempts - 1,
      retryDelay: 0,
      expireInSeconds: jobs.visibilityTimeoutSeconds,
      deadLetter: GENERATION_DEAD_QUEUE,
      db: {
        executeSql: async (text: string, values: unknown[]) => ({
          rows: await tx.query(text, values),
        }),
      },
    });
  }

  /** Starts `concurrency` worker loops on the generation queue and one on the dead-letter queue. */
  async work(
    concurrency: number,
    onJob: (job: DeliveredJob) => Promise<void>,
    onDead: (job: DeliveredJob) => Promise<void>,
  ): Promise<void> {
    const boss = await this.start();
    const options = {
      batchSize: 1,
      includeMetadata: true as const,
      pollingIntervalSeconds: this.config.jobs.pollIntervalMs / 1000,
    };
    // pg-boss 10 waits a whole polling interval after every fetch, even one that found a job:
    // one job per loop per interval (4 jobs/s per process by default) while a backlog grows.
    // Waking the loop after a job makes it fetch again at once; an empty fetch still waits.
    const deliver = (handler: (job: DeliveredJob) => Promise<void>, queue: string) => {
      let workerId = '';
      const onBatch = async (batch: PgBoss.JobWithMetadata<GenerationMessage>[]) => {
        for (const job of batch)
          await handler({
            jobId: job.data.jobId,
            principal: job.data.principal,
            retryCount: job.retryCount,
          });
        if (workerId && this.state === 'running') boss.notifyWorker(workerId);
      };
      return async () => {
        workerId = await boss.work<GenerationMessage>(queue, options, onBatch);
      };
    };
    // pg-boss 10 runs one job at a time per work() loop; concurrency is the number of loops.
    for (let i = 0; i < concurrency; i++) await deliver(onJob, GENERATION_QUEUE)();
    await deliver(onDead, GENERATION_DEAD_QUEUE)();
  }

  /** Registers the cluster-wide cron schedule and its worker (runs on whichever replica fetches it). */
  async schedule(queue: string, cron: string, onTick: () => Promise<void>): Promise<void> {
    const boss = await this.start();
    await boss.schedule(queue, cron, {}, { tz: 'UTC' });
    await boss.work(queue, { batchSize: 1, pollingIntervalSeconds: 30 }, async () => onTick());
  }

  /** Removes queue entries of jobs that were finished elsewhere (cancel, reaper). Best effort. */
  async discard(jobIds: string[]): Promise<void> {
    if (jobIds.length === 0 || this.state !== 'running' || !this.boss) return;
    await this.boss.cancel(GENERATION_QUEUE, jobIds).catch(() => undefined);
  }

  /**
   * Stops fetching, waits up to `graceMs` for running jobs, then hands any job still running
   * back to the queue (pg-boss fails it into its retry) and closes the pool.
   */
  async stop(graceMs: number): Promise<void> {
    const boss = this.boss;
    this.state = 'stopped';
    if (!boss) return;
    await boss
      .stop({ graceful: true, timeout: Math.max(1000, graceMs), wait: true, close: true })
      .catch((err) => this.logger.warn({ err: (err as Error).message }, 'job queue stop failed'));
  }
}
