import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import type { Principal } from '@app/auth';
import { APP_CONFIG, AppConfig } from '@app/config';
import {
  canonicalJson,
  CreditsService,
  idempotencyConflict,
  IdempotencyService,
} from '@app/credits';
import { DatabaseService } from '@app/database';
import { ApiError, LOGGER } from '@app/observability';
import { GenerationJobsRepository, QueueDepth } from './generation-jobs.repository';
import { decodeCursor, encodeCursor, requireJobId } from './job-cursor';
import { JobEvents } from './job-events.service';
import { JobExecutor, JobPrincipal } from './job-executor';
import { JobLifecycle } from './job-lifecycle.service';
import { JobQueue } from './job-queue.service';
import { jobsTotal } from './jobs.metrics';
import {
  ACTIVE_STATUSES,
  AdminJobView,
  jobRequestId,
  JobRecord,
  JobStatus,
  JobView,
  toAdminJobView,
  toJobEvent,
  toJobView,
} from './jobs.types';
import { SubmitJobInput } from './submit-job.dto';

export const ADMIN_CLEAR_MESSAGE = 'stuck job cleared by admin';

/** The route a submit claims its Idempotency-Key under, next to the synchronous routes' ones. */
const SUBMIT_ROUTE = '/v1/generations';

function isUniqueViolation(err: unknown): boolean {
  const e = err as { code?: string; driverError?: { code?: string } };
  return (e?.code ?? e?.driverError?.code) === '23505';
}

/** The jobs API: submit, read, cancel (public) and list, clear stuck (admin). */
@Injectable()
export class JobsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly database: DatabaseService,
    private readonly repository: GenerationJobsRepository,
    private readonly queue: JobQueue,
    private readonly lifecycle: JobLifecycle,
    private readonly events: JobEvents,
    private readonly executor: JobExecutor,
    private readonly credits: CreditsService,
    private readonly idempotency: IdempotencyService,
  ) {}

  /**
   * Reserves the request's maximum price (402 when the balance cannot cover it), then writes
   * the job and its queue entry in one transaction. With an Idempotency-Key a retried submit
   * answers the first job instead of creating (and charging for) another.
   */
  async submit(
    principal: Principal,
    input: SubmitJobInput,
    idempotencyKey: string | undefined,
    requestId: string | null,
  ): Promise<JobView> {
    await this.executor.validate(input.type, input.request);
    if (idempotencyKey === undefined) return this.create(principal, input, undefined, requestId);
    const existing = await this.replay(principal.userId, idempotencyKey, input);
    if (existing) return existing;
    // The synchronous routes keep their keys in the idempotency store (libs/credits). The submit
    // claims the key there too, under its own route, in the same atomic claim they use: a key
    // used on chat or images answers 409 idempotency_conflict here and the other way round,
    // whichever came first or if both are sent at once, and never charges twice. A concurrent
    // submit with the same body waits for the first and answers its job.
    const claim = await this.idempotency.begin({
      userId: principal.userId,
      key: idempotencyKey,
      method: 'POST',
      route: SUBMIT_ROUTE,
      body: { type: input.type, request: input.request },
    });
    if (claim.kind === 'replay')
      return (
        (await this.replay(principal.userId, idempotencyKey, input)) ??
        // The job is gone already (retention shorter than the key's 24 h): its answer as it was.
        (claim.response.body as JobView)
      );
    let job: JobView;
    try {
      job = await this.create(principal, input, idempotencyKey, requestId);
    } catch (err) {
      // Nothing was queued or charged: a retry with this key runs again.
      await this.idempotency.release(claim).catch(() => undefined);
      throw err;
    }
    // Unrecorded, the claim stays held until its lock runs out, and the job row answers retries.
    await this.idempotency
      .complete(claim, { status: 202, headers: {}, body: job })
      .catch(() => undefined);
    return job;
  }

  private async create(
    principal: Principal,
    input: SubmitJobInput,
    idempotencyKey: string | undefined,
    requestId: string | null,
  ): Promise<JobView> {
    const id = randomUUID();
    const model = input.request.model as string;
    const reservation = await this.credits.reserveFor({
      userId: principal.userId,
      model,
      kind: input.type,
      body: input.request,
      requestId,
      idempotencyKey: `job:${id}`,
    });
    const carried: JobPrincipal = { ...principal };
    let job: JobRecord;
    try {
      job = await this.database.transaction(async (tx) => {
        const created = await this.repository.insert(
          {
            id,
            userId: principal.userId,
            apiKeyId: principal.apiKeyId,
            type: input.type,
            input: input.request,
            reservation: reservation.id === null ? null : reservation,
            idempotencyKey: idempotencyKey ?? null,
            requestId,
          },
          tx,
        );
        await this.queue.enqueue(tx, id, carried);
        return created;
      }, 'jobs_submit');
    } catch (err) {
      await this.credits.refund(reservation, `generation job ${id} was not queued`);
      // A concurrent submit with the same Idempotency-Key won the race: answer its job.
      if (idempotencyKey !== undefined && isUniqueViolation(err)) {
        const existing = await this.replay(principal.userId, idempotencyKey, input);
        if (existing) return existing;
      }
      throw err;
    }
    jobsTotal.inc({ type: job.type, outcome: 'submitted' });
    await this.events.publish(toJobEvent(job), jobRequestId(job));
    return toJobView(job);
  }

  private async replay(
    userId: string,
    key: string,
    input: SubmitJobInput,
  ): Promise<JobView | undefined> {
    const existing = await this.repository.findByIdempotencyKey(userId, key);
    if (!existing) return undefined;
    if (
      existing.type !== input.type ||
      canonicalJson(existing.input) !== canonicalJson(input.request)
    )
      throw idempotencyConflict();
    return toJobView(existing);
  }

  /** The caller's own job; another user's id is indistinguishable from an unknown one. */
  async get(principal: Principal, rawId: string): Promise<JobView> {
    return toJobView(await this.ownJob(principal.userId, rawId));
  }

  /** A view of the caller's own job (WebSocket snapshots); undefined for anything else. */
  async findOwn(userId: string, id: string): Promise<JobView | undefined> {
    const job = await this.repository.findForUser(id, userId);
    return job ? toJobView(job) : undefined;
  }

  private async ownJob(userId: string, rawId: string): Promise<JobRecord> {
    const id = requireJobId(rawId);
    const job = await this.repository.findForUser(id, userId);
    if (!job) throw ApiError.notFound(`No generation job with id ${id}`, 'job_not_found', 'id');
    return job;
  }

  /**
   * Cancels a pending or running job and refunds its hold. A job already cancelled answers as
   * it is (DELETE is idempotent); a succeeded or failed one is 409.
   */
  async cancel(principal: Principal, rawId: string): Promise<JobView> {
    const job = await this.ownJob(principal.userId, rawId);
    const cancelled = await this.lifecycle.finish(
      job.id,
      { status: 'cancelled', errorMessage: 'cancelled by the client' },
      ACTIVE_STATUSES,
      principal.userId,
    );
    if (cancelled) {
      // Whichever replica runs it aborts the upstream call; the queue entry is dropped.
      await this.events.requestCancel(job.id);
      await this.queue.discard([job.id]);
      return toJobView((await this.repository.findById(job.id)) ?? cancelled);
    }
    const now = await this.ownJob(principal.userId, job.id);
    if (now.status === 'cancelled') return toJobView(now);
    throw ApiError.conflict(
      `Generation job ${job.id} has already ${now.status}; only pending or running jobs can be cancelled`,
      'job_not_cancellable',
    );
  }

  async adminList(
    filter: { status?: JobStatus; userId?: string },
    limit: number,
    rawCursor: string | undefined,
  ): Promise<{ data: AdminJobView[]; next_cursor: string | null }> {
    const rows = await this.repository.list(filter, limit + 1, decodeCursor(rawCursor));
    const page = rows.slice(0, limit);
    return {
      data: page.map(toAdminJobView),
      next_cursor:
        rows.length > limit && page.length > 0 ? encodeCursor(page[page.length - 1]) : null,
    };
  }

  async adminGet(rawId: string): Promise<AdminJobView & { input: unknown; result: unknown }> {
    const id = requireJobId(rawId);
    const job = await this.repository.findById(id);
    if (!job) throw ApiError.notFound(`No generation job with id ${id}`, 'job_not_found', 'id');
    return { ...toAdminJobView(job), input: job.input, result: job.result };
  }

  /**
   * Seed 004 "Clear Stuck Jobs": pending or generating jobs created more than `olderThanMinutes`
   * ago become failed, and their holds are refunded.
   */
  async clearStuck(
    olderThanMinutes: number,
    message: string,
    outcome: 'stuck' = 'stuck',
  ): Promise<{ cleared: number; ids: string[] }> {
    const ids: string[] = [];
    for (;;) {
      const jobs = await this.repository.failStuck(olderThanMinutes, message);
      for (const job of jobs) {
        await this.lifecycle.afterFinish(job, outcome);
        ids.push(job.id);
      }
      await this.queue.discard(jobs.map((j) => j.id));
      if (jobs.length < 500) break;
    }
    if (ids.length > 0)
      this.logger.warn({ cleared: ids.length, older_than_minutes: olderThanMinutes }, message);
    return { cleared: ids.length, ids };
  }

  /** Closes credits of finished jobs whose close never went through (a process died). */
  async repairUnclosed(): Promise<number> {
    const jobs = await this.repository.unclosedFinished(60);
    for (const job of jobs) await this.lifecycle.closeCredits(job);
    if (jobs.length > 0)
      this.logger.warn({ jobs: jobs.length }, 'credits of finished jobs closed by the repair pass');
    return jobs.length;
  }

  async depth(): Promise<QueueDepth> {
    return this.repository.depth(this.config.jobs.stuckTimeoutMinutes);
  }
}
