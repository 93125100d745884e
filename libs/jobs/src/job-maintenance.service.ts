import {
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  OnModuleInit,
} from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { DatabaseService, RequestLogWriter } from '@app/database';
import { HealthRegistry } from '@app/health';
import { LOGGER } from '@app/observability';
import { GenerationJobsRepository, QueueDepth } from './generation-jobs.repository';
import { JobQueue, RETENTION_QUEUE } from './job-queue.service';
import { JobWorker } from './job-worker.service';
import { queueDepth } from './jobs.metrics';
import { JobsService } from './jobs.service';

export const REAPER_MESSAGE = 'stuck job cleared';
const DEPTH_REFRESH_MS = 15_000;
const RETENTION_BATCH = 5_000;

export interface RetentionReport {
  request_log_partitions_dropped: string[];
  audit_rows_deleted: number;
  jobs_deleted: number;
}

/**
 * Keeps the queue honest and the database small: the stuck-job reaper (every replica, every
 * JOB_REAPER_INTERVAL_SECONDS; the SQL skips rows another replica holds), the queue-depth gauge,
 * the /health/detailed component, and the daily retention (a pg-boss cron schedule, so exactly
 * one replica runs it per slot).
 */
@Injectable()
export class JobMaintenance implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private reaperTimer?: NodeJS.Timeout;
  private depthTimer?: NodeJS.Timeout;
  private reaping = false;
  private lastDepth?: QueueDepth;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly jobs: JobsService,
    private readonly repository: GenerationJobsRepository,
    private readonly queue: JobQueue,
    private readonly worker: JobWorker,
    private readonly database: DatabaseService,
    private readonly requestLogs: RequestLogWriter,
    private readonly health: HealthRegistry,
  ) {}

  onModuleInit(): void {
    this.health.register('job queue', async () => {
      const depth = await this.refreshDepth();
      const queue = this.queue.status;
      const needsQueue = this.config.backgroundTasks;
      const status =
        needsQueue && queue.state !== 'running' ? 'down' : depth.stuck > 0 ? 'degraded' : 'up';
      return {
        name: 'job queue',
        status,
        details: {
          queue: queue.state,
          workers: this.worker.isWorking ? this.config.jobs.concurrency : 0,
          pending: depth.pending,
          generating: depth.generating,
          oldest_pending_seconds: depth.oldestPendingSeconds,
          stuck: depth.stuck,
          stuck_timeout_minutes: this.config.jobs.stuckTimeoutMinutes,
          ...(queue.lastError && queue.state !== 'running' ? { error: queue.lastError } : {}),
        },
      };
    });
  }

  async onApplicationBootstrap(): Promise<void> {
    if (!this.config.backgroundTasks) return;
    const jobs = this.config.jobs;
    this.reaperTimer = setInterval(() => void this.reap(), jobs.reaperIntervalSeconds * 1000);
    this.reaperTimer.unref();
    this.depthTimer = setInterval(
      () => void this.refreshDepth().catch(() => undefined),
      DEPTH_REFRESH_MS,
    );
    this.depthTimer.unref();
    void this.refreshDepth().catch(() => undefined);
    // Registered where workers run: whichever of them fetches the slot's job runs it.
    if (jobs.workerEnabled) {
      try {
        await this.queue.schedule(RETENTION_QUEUE, jobs.retentionSchedule, async () => {
          await this.runRetention();
        });
      } catch (err) {
        this.logger.error({ err: (err as Error).message }, 'retention schedule not registered');
      }
    }
  }

  /** One reaper round: clear stuck jobs, then close credits a dead process left open. */
  async reap(): Promise<void> {
    if (this.reaping) return;
    this.reaping = true;
    try {
      await this.jobs.clearStuck(this.config.jobs.stuckTimeoutMinutes, REAPER_MESSAGE);
      await this.jobs.repairUnclosed();
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'job reaper round failed');
    } finally {
      this.reaping = false;
    }
  }

  async refreshDepth(): Promise<QueueDepth> {
    try {
      const depth = await this.repository.depth(this.config.jobs.stuckTimeoutMinutes);
      queueDepth.set({ status: 'pending' }, depth.pending);
      queueDepth.set({ status: 'generating' }, depth.generating);
      this.lastDepth = depth;
      return depth;
    } catch (err) {
      if (this.lastDepth) return this.lastDepth;
      throw err;
    }
  }

  /**
   * Daily retention: request_logs day partitions past REQUEST_LOG_RETENTION_DAYS, audit_log rows
   * past AUDIT_LOG_RETENTION_DAYS, finished jobs past JOB_RETENTION_DAYS. Also
   * `npm run cli -- maintenance:retention`.
   */
  async runRetention(): Promise<RetentionReport> {
    const partitions = await this.requestLogs.dropExpiredPartitions();
    const auditRows = await this.deleteAuditBefore(this.config.auditLog.retentionDays);
    const jobs = await this.repository.deleteFinishedBefore(this.config.jobs.retentionDays);
    const report: RetentionReport = {
      request_log_partitions_dropped: partitions,
      audit_rows_deleted: auditRows,
      jobs_deleted: jobs,
    };
    this.logger.info(report, 'retention complete');
    return report;
  }

  /**
   * audit_log belongs to libs/auth; deleting by age is the scheduled maintenance DESIGN §1 gives
   * to libs/jobs, so it lives here rather than in every module that keeps history.
   */
  private async deleteAuditBefore(days: number): Promise<number> {
    let total = 0;
    for (;;) {
      const result = await this.database.execute(
        `DELETE FROM audit_log WHERE id IN (
           SELECT id FROM audit_log WHERE created_at < now() - make_interval(days => $1) LIMIT $2)`,
        [days, RETENTION_BATCH],
        'audit_retention',
      );
      const deleted = result.rowCount;
      total += deleted;
      if (deleted < RETENTION_BATCH) return total;
    }
  }

  onApplicationShutdown(): void {
    if (this.reaperTimer) clearInterval(this.reaperTimer);
    if (this.depthTimer) clearInterval(this.depthTimer);
  }
}
