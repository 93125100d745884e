import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Async jobs (issue 8): what a job needs to be billed exactly once and to make a retried submit
 * safe. The queue itself (pg-boss) creates and upgrades its own `pgboss` schema at start.
 */
export class GenerationJobQueue1732300008000 implements MigrationInterface {
  name = 'GenerationJobQueue1732300008000';

  async up(q: QueryRunner): Promise<void> {
    // reservation: the credits held at submit (a plain object from CreditsService.reserve), so
    // whichever worker, replica or reaper finishes the job can settle or refund it.
    // credits_closed_at: set once that settle/refund went through; a finished job without it
    // (process died in between) is closed again by the reaper — the close is idempotent.
    await q.query(`
      ALTER TABLE generation_jobs
        ADD COLUMN reservation jsonb,
        ADD COLUMN credits_closed_at timestamptz,
        ADD COLUMN idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
        ADD COLUMN request_id text,
        ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()`);
    // Same Idempotency-Key from the same user → the same job, never a second one.
    await q.query(`
      CREATE UNIQUE INDEX generation_jobs_user_idempotency_idx
        ON generation_jobs (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL`);
    // Retention deletes finished jobs by completion time.
    await q.query(`
      CREATE INDEX generation_jobs_completed_idx ON generation_jobs (completed_at)
        WHERE status IN ('succeeded', 'failed', 'cancelled')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS generation_jobs_completed_idx`);
    await q.query(`DROP INDEX IF EXISTS generation_jobs_user_idempotency_idx`);
    await q.query(`
      ALTER TABLE generation_jobs
        DROP COLUMN IF EXISTS updated_at,
        DROP COLUMN IF EXISTS request_id,
        DROP COLUMN IF EXISTS idempotency_key,
        DROP COLUMN IF EXISTS credits_closed_at,
        DROP COLUMN IF EXISTS reservation`);
  }
}
