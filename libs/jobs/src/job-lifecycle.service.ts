import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { CreditsService, Reservation } from '@app/credits';
import { LOGGER } from '@app/observability';
import { GenerationJobsRepository, JobOutcome } from './generation-jobs.repository';
import { JobEvents } from './job-events.service';
import { jobsTotal } from './jobs.metrics';
import { jobRequestId, JobRecord, JobStatus, toJobEvent } from './jobs.types';

export type FinishOutcome = 'succeeded' | 'failed' | 'cancelled' | 'stuck';

function isReservation(value: unknown): value is Reservation {
  const r = value as Reservation | null;
  return typeof r === 'object' && r !== null && typeof r.userId === 'string' && 'id' in r;
}

/**
 * The one way a job reaches a final status. The status change is a compare-and-set, and only
 * its winner (worker, cancel, reaper, dead letter) settles or refunds the credits hold — so a
 * job is charged at most once however many workers, replicas or operators touch it. The close
 * itself is idempotent in CreditsService; if the process dies between the status change and
 * the close, the reaper's repair pass closes it again (credits_closed_at stays null until then).
 */
@Injectable()
export class JobLifecycle {
  constructor(
    private readonly repository: GenerationJobsRepository,
    private readonly credits: CreditsService,
    private readonly events: JobEvents,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Finishes the job if it is still in `from`; undefined when someone else finished it first. */
  async finish(
    jobId: string,
    outcome: JobOutcome,
    from: JobStatus[],
    userId?: string,
  ): Promise<JobRecord | undefined> {
    const job = await this.repository.finish(jobId, outcome, from, userId);
    if (!job) return undefined;
    await this.afterFinish(job, outcome.status);
    return job;
  }

  /** Credits, metrics and the event for a job that just reached a final status. */
  async afterFinish(job: JobRecord, outcome: FinishOutcome): Promise<JobRecord> {
    jobsTotal.inc({ type: job.type, outcome });
    const closed = await this.closeCredits(job);
    const log = outcome === 'succeeded' ? 'info' : 'warn';
    const requestId = jobRequestId(job);
    // Named after the job's final status (succeeded|failed|cancelled, as clients and the runbook
    // see it): a job cleared as stuck ends "generation job failed" with outcome "stuck", the
    // label of gateway_generation_jobs_total.
    this.logger[log](
      {
        job_id: job.id,
        request_id: requestId,
        outcome,
        type: job.type,
        status: job.status,
        attempts: job.attempts,
        credits: closed.creditsCharged,
        error: job.errorMessage ?? undefined,
      },
      `generation job ${job.status}`,
    );
    await this.events.publish(toJobEvent(closed), requestId);
    return closed;
  }

  /** Settles (succeeded) or refunds (anything else) the job's hold; safe to call again. */
  async closeCredits(job: JobRecord): Promise<JobRecord> {
    if (!isReservation(job.reservation)) return job;
    const close =
      job.status === 'succeeded'
        ? await this.credits.settle(job.reservation, job.creditsCharged)
        : await this.credits.refund(
            job.reservation,
            `generation job ${job.id} ${job.status}${job.errorMessage ? `: ${job.errorMessage}` : ''}`,
          );
    // null: the credits database write failed; CreditsService retries it in process and the
    // reaper's repair pass retries it from any replica.
    if (!close) return job;
    await this.repository.markCreditsClosed(job.id, close.charged);
    return { ...job, creditsCharged: close.charged, creditsClosedAt: new Date() };
  }
}
