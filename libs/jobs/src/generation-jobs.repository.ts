import { Injectable } from '@nestjs/common';
import { DatabaseService, Queryable } from '@app/database';
import { JobCursor } from './job-cursor';
import { FINAL_STATUSES, JobRecord, JobStatus, JobType } from './jobs.types';

const COLUMNS = `id, user_id, api_key_id, type, status, input, result, error_message, credits_charged,
  attempts, reservation, credits_closed_at, idempotency_key, request_id, created_at, started_at,
  completed_at`;

interface JobRow {
  id: string;
  user_id: string;
  api_key_id: string | null;
  type: JobType;
  status: JobStatus;
  input: Record<string, unknown>;
  result: unknown;
  error_message: string | null;
  credits_charged: string | number;
  attempts: number;
  reservation: unknown;
  credits_closed_at: Date | null;
  idempotency_key: string | null;
  request_id: string | null;
  created_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
}

function toRecord(row: JobRow): JobRecord {
  return {
    id: row.id,
    userId: row.user_id,
    apiKeyId: row.api_key_id,
    type: row.type,
    status: row.status,
    input: row.input,
    result: row.result,
    errorMessage: row.error_message,
    creditsCharged: Number(row.credits_charged),
    attempts: row.attempts,
    reservation: row.reservation,
    creditsClosedAt: row.credits_closed_at,
    idempotencyKey: row.idempotency_key,
    requestId: row.request_id,
    createdAt: row.created_at,
    startedAt: row.started_at,
    completedAt: row.completed_at,
  };
}

export interface NewJob {
  id: string;
  userId: string;
  apiKeyId: string | null;
  type: JobType;
  input: Record<string, unknown>;
  reservation: unknown;
  idempotencyKey: string | null;
  requestId: string | null;
}

export interface JobOutcome {
  status: 'succeeded' | 'failed' | 'cancelled';
  result?: unknown;
  errorMessage?: string | null;
  creditsCharged?: number;
}

export interface QueueDepth {
  pending: number;
  generating: number;
  oldestPendingSeconds: number;
  /** Active jobs older than the stuck timeout (what the reaper will clear). */
  stuck: number;
}

/**
 * SQL for generation_jobs. Every status change is a compare-and-set on the current status, so
 * a worker, a cancel, and the reaper racing for the same job never both win.
 */
@Injectable()
export class GenerationJobsRepository {
  constructor(private readonly db: DatabaseService) {}

  async insert(job: NewJob, tx: Queryable): Promise<JobRecord> {
    const rows: JobRow[] = await tx.query(
      `INSERT INTO generation_jobs (id, user_id, api_key_id, type, status, input, reservation,
         idempotency_key, request_id)
       VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $8)
       RETURNING ${COLUMNS}`,
      [
        job.id,
        job.userId,
        job.apiKeyId,
        job.type,
        JSON.stringify(job.input),
        job.reservation === null ? null : JSON.stringify(job.reservation),
        job.idempotencyKey,
        job.requestId,
      ],
    );
    return toRecord(rows[0]);
  }

  async findById(id: string): Promise<JobRecord | undefined> {
    const rows = await this.db.query<JobRow>(
      `SELECT ${COLUMNS} FROM generation_jobs WHERE id = $1`,
      [id],
      'jobs_find',
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async findForUser(id: string, userId: string): Promise<JobRecord | undefined> {
    const rows = await this.db.query<JobRow>(
      `SELECT ${COLUMNS} FROM generation_jobs WHERE id = $1 AND user_id = $2`,
      [id, userId],
      'jobs_find',
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async findByIdempotencyKey(userId: string, key: string): Promise<JobRecord | undefined> {
    const rows = await this.db.query<JobRow>(
      `SELECT ${COLUMNS} FROM generation_jobs WHERE user_id = $1 AND idempotency_key = $2`,
      [userId, key],
      'jobs_find',
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** A worker takes the job: pending → generating (or generating again after a dead worker). */
  async claim(id: string): Promise<JobRecord | undefined> {
    const rows = await this.db.query<JobRow>(
      `UPDATE generation_jobs
         SET status = 'generating', attempts = attempts + 1, started_at = now(), updated_at = now()
         WHERE id = $1 AND status IN ('pending', 'generating')
         RETURNING ${COLUMNS}`,
      [id],
      'jobs_claim',
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Moves a job to a final status if it is still in one of `from`; undefined when it was not. */
  async finish(
    id: string,
    outcome: JobOutcome,
    from: JobStatus[],
    userId?: string,
  ): Promise<JobRecord | undefined> {
    const rows = await this.db.query<JobRow>(
      `UPDATE generation_jobs
         SET status = $2, result = $3, error_message = $4, credits_charged = $5,
             completed_at = now(), updated_at = now()
         WHERE id = $1 AND status = ANY($6::text[]) AND ($7::uuid IS NULL OR user_id = $7)
         RETURNING ${COLUMNS}`,
      [
        id,
        outcome.status,
        outcome.result === undefined ? null : JSON.stringify(outcome.result),
        outcome.errorMessage ?? null,
        outcome.creditsCharged ?? 0,
        from,
        userId ?? null,
      ],
      'jobs_finish',
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Records that the job's credits hold was settled or refunded (and what it cost in the end). */
  async markCreditsClosed(id: string, creditsCharged: number): Promise<void> {
    await this.db.query(
      `UPDATE generation_jobs SET credits_closed_at = now(), credits_charged = $2, updated_at = now()
       WHERE id = $1`,
      [id, creditsCharged],
      'jobs_credits_closed',
    );
  }

  /**
   * Seed 004 "Clear Stuck Jobs": active jobs created before the cutoff become failed. SKIP LOCKED
   * lets several replicas run the reaper at once without waiting on each other.
   */
  async failStuck(olderThanMinutes: number, message: string, limit = 500): Promise<JobRecord[]> {
    const rows = await this.db.query<JobRow>(
      `UPDATE generation_jobs
         SET status = 'failed', error_message = $2, completed_at = now(), updated_at = now()
         WHERE id IN (
           SELECT id FROM generation_jobs
           WHERE status IN ('pending', 'generating')
             AND created_at < now() - make_interval(mins => $1)
           ORDER BY created_at
           LIMIT $3
           FOR UPDATE SKIP LOCKED)
         AND status IN ('pending', 'generating')
         RETURNING ${COLUMNS}`,
      [olderThanMinutes, message, limit],
      'jobs_fail_stuck',
    );
    return rows.map(toRecord);
  }

  /** Finished jobs whose credits hold was never closed (the process died in between). */
  async unclosedFinished(olderThanSeconds: number, limit = 200): Promise<JobRecord[]> {
    const rows = await this.db.query<JobRow>(
      `SELECT ${COLUMNS} FROM generation_jobs
       WHERE status IN ('succeeded', 'failed', 'cancelled') AND reservation IS NOT NULL
         AND credits_closed_at IS NULL AND completed_at < now() - make_interval(secs => $1)
       ORDER BY completed_at LIMIT $2`,
      [olderThanSeconds, limit],
      'jobs_unclosed',
    );
    return rows.map(toRecord);
  }

  async list(
    filter: { status?: JobStatus; userId?: string },
    limit: number,
    cursor?: JobCursor,
  ): Promise<JobRecord[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (filter.status) {
      params.push(filter.status);
      where.push(`status = $${params.length}`);
    }
    if (filter.userId) {
      params.push(filter.userId);
      where.push(`user_id = $${params.length}`);
    }
    // Compared at millisecond precision: the cursor went through a JS Date.
    if (cursor) {
      params.push(cursor.createdAt, cursor.id);
      where.push(
        `(date_trunc('milliseconds', created_at), id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`,
      );
    }
    params.push(limit);
    const rows = await this.db.query<JobRow>(
      `SELECT ${COLUMNS} FROM generation_jobs
       ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY date_trunc('milliseconds', created_at) DESC, id DESC
       LIMIT $${params.length}`,
      params,
      'jobs_list',
    );
    return rows.map(toRecord);
  }

  async depth(stuckTimeoutMinutes: number): Promise<QueueDepth> {
    const rows = await this.db.query<{
      pending: string;
      generating: string;
      oldest: number | null;
      stuck: string;
    }>(
      `SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
              count(*) FILTER (WHERE status = 'generating') AS generating,
              extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::float8 AS oldest,
              count(*) FILTER (WHERE created_at < now() - make_interval(mins => $1)) AS stuck
       FROM generation_jobs WHERE status IN ('pending', 'generating')`,
      [stuckTimeoutMinutes],
      'jobs_depth',
    );
    const row = rows[0];
    return {
      pending: Number(row?.pending ?? 0),
      generating: Number(row?.generating ?? 0),
      oldestPendingSeconds: Math.max(0, Math.round(Number(row?.oldest ?? 0))),
      stuck: Number(row?.stuck ?? 0),
    };
  }

  /** Retention: finished jobs older than `days`, deleted in batches to keep locks short. */
  async deleteFinishedBefore(days: number, batch = 5000): Promise<number> {
    let total = 0;
    for (;;) {
      const result = await this.db.execute(
        `DELETE FROM generation_jobs WHERE id IN (
           SELECT id FROM generation_jobs
           WHERE status = ANY($1::text[]) AND completed_at < now() - make_interval(days => $2)
           LIMIT $3)`,
        [FINAL_STATUSES, days, batch],
        'jobs_retention',
      );
      const deleted = result.rowCount;
      total += deleted;
      if (deleted < batch) return total;
    }
  }
}
