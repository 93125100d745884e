import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Credits (issue 6): where a price came from, per-size image prices, and the table that makes a
 * billable request with an Idempotency-Key run (and charge) once.
 */
export class CreditsPricingIdempotency1732300006000 implements MigrationInterface {
  name = 'CreditsPricingIdempotency1732300006000';

  async up(q: QueryRunner): Promise<void> {
    // 'file' rows follow PROVIDERS_FILE at every boot; 'admin' rows were edited at run time and
    // are not overwritten by a restart.
    await q.query(`
      ALTER TABLE pricing
        ADD COLUMN per_image_by_size jsonb NOT NULL DEFAULT '{}',
        ADD COLUMN source text NOT NULL DEFAULT 'file' CHECK (source IN ('file', 'admin'))`);

    await q.query(`
      CREATE TABLE idempotency_keys (
        user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
        request_hash text NOT NULL,
        status text NOT NULL DEFAULT 'in_flight' CHECK (status IN ('in_flight', 'completed')),
        response jsonb,
        locked_until timestamptz NOT NULL,
        expires_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz,
        PRIMARY KEY (user_id, key)
      )`);
    await q.query(`CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at)`);

    // The audit's "open reservations" scan looks at debits only.
    await q.query(
      `CREATE INDEX credit_ledger_debits_created_idx ON credit_ledger (created_at) WHERE event_type = 'debit'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS credit_ledger_debits_created_idx`);
    await q.query(`DROP TABLE IF EXISTS idempotency_keys`);
    await q.query(
      `ALTER TABLE pricing DROP COLUMN IF EXISTS source, DROP COLUMN IF EXISTS per_image_by_size`,
    );
  }
}
