import { MigrationInterface, QueryRunner } from 'typeorm';
import { CreditsLedgerBatch1732300010000 } from './1732300010000-credits-ledger-batch';

/**
 * `credits_apply_batch` with one balance update per account and batch instead of one per
 * operation. A batch often carries many operations of one account (a product backend with one
 * API key under load), and each UPDATE of the same row in one transaction writes a new row
 * version and its WAL record. Now the account's row is locked and read once when the batch
 * reaches it (operations are sorted by user, so that is once per account), every operation is
 * checked and applied to the balance in memory with the same rules as before, each ledger row
 * gets the balance after it, and the balance is written once when the batch moves on to the
 * next account. An account without a `user_credits` row: debits are 'insufficient', closes
 * 'slow' (the one-at-a-time path decides), as the per-operation UPDATEs answered before.
 */
export class CreditsBatchPerAccount1732300012000 implements MigrationInterface {
  name = 'CreditsBatchPerAccount1732300012000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION credits_apply_batch(
        p_kind text[], p_user uuid[], p_ref uuid[], p_amount bigint[],
        p_request text[], p_description text[])
      RETURNS TABLE (
        o_ord int, o_status text, o_id uuid, o_event_type text, o_amount bigint,
        o_balance_after bigint, o_idempotency_key text, o_created_at timestamptz, o_reserved bigint)
      LANGUAGE plpgsql AS $fn$
      DECLARE
        i int;
        v_account uuid;        -- the account whose row is locked and whose balance is in v_balance
        v_balance bigint;      -- NULL: the account has no user_credits row
        v_changed boolean := false;
        v_owner uuid;
        v_reserved bigint;
        v_delta bigint;
        v_key text;
      BEGIN
        FOR i IN 1 .. coalesce(array_length(p_kind, 1), 0) LOOP
          IF v_account IS DISTINCT FROM p_user[i] THEN
            IF v_changed THEN
              UPDATE user_credits SET balance = v_balance, updated_at = now()
                WHERE user_id = v_account;
            END IF;
            v_account := p_user[i];
            v_changed := false;
            SELECT uc.balance INTO v_balance FROM user_credits uc
              WHERE uc.user_id = v_account FOR UPDATE;
          END IF;
          o_ord := i;
          o_status := 'ok';
          o_id := NULL; o_event_type := NULL; o_amount := NULL; o_balance_after := NULL;
          o_idempotency_key := NULL; o_created_at := NULL; o_reserved := NULL;
          IF p_kind[i] = 'debit' THEN
            IF v_balance IS NULL OR v_balance < p_amount[i] THEN
              o_status := 'insufficient';
            ELSE
              v_balance := v_balance - p_amount[i];
              v_changed := true;
              INSERT INTO credit_ledger AS l
                  (user_id, event_type, amount, balance_after, request_id, description, created_at)
                VALUES (v_account, 'debit', -p_amount[i], v_balance, p_request[i], p_description[i],
                        clock_timestamp())
                RETURNING l.id, l.event_type, l.amount, l.balance_after, l.idempotency_key, l.created_at
                INTO o_id, o_event_type, o_amount, o_balance_after, o_idempotency_key, o_created_at;
            END IF;
          ELSE
            v_key := 'close:' || p_ref[i]::text;
            SELECT d.user_id, -d.amount INTO v_owner, v_reserved
              FROM credit_ledger d WHERE d.id = p_ref[i] AND d.event_type = 'debit';
            IF NOT FOUND OR v_owner <> v_account OR v_balance IS NULL
               OR (p_kind[i] = 'settle' AND p_amount[i] > v_reserved)
               OR EXISTS (SELECT 1 FROM credit_ledger c
                          WHERE c.user_id = v_owner AND c.idempotency_key = v_key) THEN
              o_status := 'slow';
            ELSE
              v_delta := CASE WHEN p_kind[i] = 'refund' THEN v_reserved
                              ELSE v_reserved - p_amount[i] END;
              v_balance := v_balance + v_delta;
              v_changed := true;
              INSERT INTO credit_ledger AS l
                  (user_id, event_type, amount, balance_after, idempotency_key, request_id,
                   description, created_at)
                VALUES (v_owner, p_kind[i], v_delta, v_balance, v_key, p_request[i], p_description[i],
                        clock_timestamp())
                RETURNING l.id, l.event_type, l.amount, l.balance_after, l.idempotency_key, l.created_at
                INTO o_id, o_event_type, o_amount, o_balance_after, o_idempotency_key, o_created_at;
              o_reserved := v_reserved;
            END IF;
          END IF;
          RETURN NEXT;
        END LOOP;
        IF v_changed THEN
          UPDATE user_credits SET balance = v_balance, updated_at = now()
            WHERE user_id = v_account;
        END IF;
      END
      $fn$`);
  }

  /** Back to one UPDATE per operation (same signature and results). */
  async down(q: QueryRunner): Promise<void> {
    await new CreditsLedgerBatch1732300010000().up(q);
  }
}
