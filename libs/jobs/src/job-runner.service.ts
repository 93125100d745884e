import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { CreditsService } from '@app/credits';
import { ApiError, LOGGER } from '@app/observability';
import { GenerationJobsRepository } from './generation-jobs.repository';
import { JobEvents } from './job-events.service';
import { GenerationResult, JobExecutor, JobPrincipal } from './job-executor';
import { JobLifecycle } from './job-lifecycle.service';
import { DeliveredJob } from './job-queue.service';
import { jobsTotal } from './jobs.metrics';
import { jobRequestId, toJobEvent } from './jobs.types';

/** The error text a client sees for a failed job: ours when we have one, never a stack. */
function failureMessage(err: unknown): string {
  if (err instanceof ApiError) return `${err.code}: ${err.message}`.slice(0, 1000);
  if ((err as Error)?.name === 'AbortError') return 'generation aborted';
  return 'internal error while generating';
}

/** Jobs queued before the principal travelled with the message: the owner, per-user cache. */
function fallbackPrincipal(userId: string, apiKeyId: string | null): JobPrincipal {
  return {
    userId,
    apiKeyId: apiKeyId ?? '',
    keyPrefix: '',
    scopes: ['jobs'],
    rateLimitPerMinute: null,
    rateLimitPerHour: null,
    cacheScope: 'user',
  };
}

/**
 * Runs one delivered job on this worker: claim it, generate, finish it. Everything a client
 * can see goes through JobLifecycle; anything thrown from here makes pg-boss retry the job.
 */
@Injectable()
export class JobRunner {
  /** Jobs running in this process, so a cancel (from any replica) can abort the upstream call. */
  private readonly running = new Map<string, AbortController>();
  private stopping = false;

  constructor(
    private readonly repository: GenerationJobsRepository,
    private readonly lifecycle: JobLifecycle,
    private readonly events: JobEvents,
    private readonly executor: JobExecutor,
    private readonly credits: CreditsService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  get activeCount(): number {
    return this.running.size;
  }

  /** Aborts a job running here (no-op elsewhere); its result, if any, is discarded. */
  abort(jobId: string): void {
    this.running.get(jobId)?.abort();
  }

  /** Shutdown after the grace period: whatever still runs is handed back to the queue. */
  abortAll(): void {
    this.stopping = true;
    for (const controller of this.running.values()) controller.abort();
  }

  async run(delivery: DeliveredJob): Promise<void> {
    const job = await this.repository.claim(delivery.jobId);
    // Cancelled, reaped or already finished by an earlier attempt: nothing left to do.
    if (!job) return;
    const requestId = jobRequestId(job);
    if (delivery.retryCount > 0) {
      jobsTotal.inc({ type: job.type, outcome: 'retried' });
      this.logger.warn(
        { job_id: job.id, request_id: requestId, attempt: job.attempts },
        'generation job picked up again after its worker was lost',
      );
    }
    await this.events.publish(toJobEvent(job), requestId);
    const controller = new AbortController();
    this.running.set(job.id, controller);
    // pg-boss gives up on an attempt after the visibility timeout and queues it again; stop
    // this one a second earlier so that one attempt never runs beside the next.
    const limitSeconds = this.config.jobs.visibilityTimeoutSeconds;
    let timedOut = false;
    const timer = setTimeout(
      () => {
        timedOut = true;
        controller.abort();
      },
      Math.max(1, limitSeconds - 1) * 1000,
    );
    timer.unref();
    let generated: GenerationResult;
    try {
      generated = await this.executor.execute(
        { id: job.id, requestId, type: job.type, request: job.input },
        delivery.principal ?? fallbackPrincipal(job.userId, job.apiKeyId),
        controller.signal,
      );
    } catch (err) {
      // Shutting down: leave the job as it is; pg-boss hands it to another worker.
      if (this.stopping) throw err;
      const message = timedOut
        ? `generation took longer than JOB_VISIBILITY_TIMEOUT_SECONDS (${limitSeconds} s)`
        : failureMessage(err);
      await this.lifecycle.finish(job.id, { status: 'failed', errorMessage: message }, [
        'generating',
      ]);
      return;
    } finally {
      clearTimeout(timer);
      this.running.delete(job.id);
    }
    const cost = generated.cached
      ? this.credits.cacheHitPrice(generated.model)
      : this.credits.priceOf(generated.model, generated.usage);
    const finished = await this.lifecycle.finish(
      job.id,
      { status: 'succeeded', result: generated.result, creditsCharged: cost },
      ['generating'],
    );
    if (!finished)
      this.logger.info(
        { job_id: job.id, request_id: requestId },
        'generation job was finished elsewhere (cancelled or cleared); result discarded',
      );
  }

  /** pg-boss gave up on the job (every attempt lost its worker): fail it and refund. */
  async giveUp(jobId: string): Promise<void> {
    await this.lifecycle.finish(
      jobId,
      { status: 'failed', errorMessage: 'worker lost the job on every attempt' },
      ['pending', 'generating'],
    );
  }
}
