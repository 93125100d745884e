import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
} from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { DatabaseService } from '@app/database';
import { LOGGER } from '@app/observability';
import { JobEvents } from './job-events.service';
import { JobQueue } from './job-queue.service';
import { JobRunner } from './job-runner.service';

/**
 * Starts the queue in every process with background tasks (the gateway sends jobs; maintenance
 * and schedules run wherever pg-boss runs) and the worker loops where JOB_WORKER_ENABLED is
 * true (the gateway by default, always in `npm run worker`).
 */
@Injectable()
export class JobWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private working = false;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly queue: JobQueue,
    private readonly runner: JobRunner,
    private readonly events: JobEvents,
    private readonly database: DatabaseService,
  ) {}

  get isWorking(): boolean {
    return this.working;
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.backgroundTasks) return;
    const jobs = this.config.jobs;
    if (jobs.stuckTimeoutMinutes * 60 <= jobs.visibilityTimeoutSeconds * jobs.maxAttempts)
      this.logger.warn(
        {
          stuck_timeout_minutes: jobs.stuckTimeoutMinutes,
          visibility_timeout_seconds: jobs.visibilityTimeoutSeconds,
          max_attempts: jobs.maxAttempts,
        },
        'JOB_STUCK_TIMEOUT_MINUTES is shorter than every attempt together: the reaper may clear jobs that would have been retried',
      );
    try {
      await this.queue.start();
    } catch (err) {
      // Readiness does not depend on the queue: synchronous endpoints keep working, submits get
      // 503 and /health/detailed shows the job queue down until a later start succeeds.
      this.logger.error({ err: (err as Error).message }, 'job queue failed to start');
      return;
    }
    if (!jobs.workerEnabled) {
      this.logger.info('job workers disabled in this process (JOB_WORKER_ENABLED=false)');
      return;
    }
    this.events.onCancel((jobId) => this.runner.abort(jobId));
    await this.queue.work(
      jobs.concurrency,
      async (job) => {
        await this.databaseReachable();
        await this.runner.run(job);
      },
      async (job) => {
        await this.databaseReachable();
        await this.runner.giveUp(job.jobId);
      },
    );
    this.working = true;
    this.logger.info({ concurrency: jobs.concurrency }, 'job workers started');
  }

  /**
   * After a Postgres restart pg-boss fetches jobs as soon as it reconnects, while this process
   * still counts the database as unreachable until its next probe (every 2 s): a claim then
   * fails at once and burns an attempt — both attempts within a short outage, and the job stayed
   * pending until the reaper. Wait for the probe first (bounded, well inside the visibility
   * timeout); no query is spent on it.
   */
  private async databaseReachable(): Promise<void> {
    const deadline = Date.now() + this.config.jobs.visibilityTimeoutSeconds * 500;
    while (!this.database.isReachable && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 250));
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.working = false;
    await this.queue.stop(this.config.http.shutdownGraceMs);
    // Jobs still running after the grace period go back to the queue (pg-boss already failed
    // them into a retry); aborting stops their upstream calls.
    this.runner.abortAll();
  }
}
