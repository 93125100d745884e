import { MigrationInterface, QueryRunner } from 'typeorm';
import { CreditsLedgerBatch1732300010000 } from './1732300010000-credits-ledger-batch';

/**
 * `credits_apply_batch` with at most two balance updates per account and batch instead of one
 * per operation. A batch often carries many operations of one account (a product backend with
 * one API key under load), and each UPDATE of the same row in one transaction writes a new row
 * version and its WAL record. The first operation that changes an account's balance updates the
 * row as before, which locks it for the rest of the transaction; from then on the account's
 * operations are checked and applied to the balance in memory (same rules: never below zero, a
 * close only of an open debit and within its hold), each ledger row gets the balance after it,
 * and the balance is written once more when the batch moves on to the next account. A batch
 * with one operation per account runs exactly the statements of the previous version.
 * Operations arrive sorted by user; unsorted input is still correct, only less batched.
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
        v_account uuid;           -- the account of the operations being applied
        v_locked boolean := false; -- this transaction has updated (so locked) the account's row
        v_balance bigint;         -- its balance, once locked
        v_pending boolean := false; -- v_balance has changes not yet written to the row
        v_owner uuid;
        v_reserved bigint;
        v_delta bigint;
        v_key text;
      BEGIN
        FOR i IN 1 .. coalesce(array_length(p_kind, 1), 0) LOOP
          IF v_account IS DISTINCT FROM p_user[i] THEN
            IF v_pending THEN
              UPDATE user_credits SET balance = v_balance, updated_at = now()
                WHERE user_id = v_account;
            END IF;
            v_account := p_user[i];
            v_locked := false;
            v_pending := false;
            v_balance := NULL;
          END IF;
          o_ord := i;
          o_status := 'ok';
          o_id := NULL; o_event_type := NULL; o_amount := NULL; o_balance_after := NULL;
          o_idempotency_key := NULL; o_created_at := NULL; o_reserved := NULL;
          IF p_kind[i] = 'debit' THEN
            IF v_locked THEN
              IF v_balance < p_amount[i] THEN
                o_status := 'insufficient';
              ELSE
                v_balance := v_balance - p_amount[i];
                v_pending := true;
              END IF;
            ELSE
              UPDATE user_credits uc SET balance = uc.balance - p_amount[i], updated_at = now()
                WHERE uc.user_id = v_account AND uc.balance >= p_amount[i]
                RETURNING uc.balance INTO v_balance;
              IF FOUND THEN v_locked := true; ELSE o_status := 'insufficient'; END IF;
            END IF;
            IF o_status = 'ok' THEN
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
            IF NOT FOUND OR v_owner <> v_account
               OR (p_kind[i] = 'settle' AND p_amount[i] > v_reserved)
               OR EXISTS (SELECT 1 FROM credit_ledger c
                          WHERE c.user_id = v_owner AND c.idempotency_key = v_key) THEN
              o_status := 'slow';
            ELSE
              v_delta := CASE WHEN p_kind[i] = 'refund' THEN v_reserved
                              ELSE v_reserved - p_amount[i] END;
              IF v_locked THEN
                v_balance := v_balance + v_delta;
                v_pending := true;
              ELSE
                UPDATE user_credits uc SET balance = uc.balance + v_delta, updated_at = now()
                  WHERE uc.user_id = v_owner
                  RETURNING uc.balance INTO v_balance;
                IF FOUND THEN v_locked := true; ELSE o_status := 'slow'; END IF;
              END IF;
              IF o_status = 'ok' THEN
                INSERT INTO credit_ledger AS l
                    (user_id, event_type, amount, balance_after, idempotency_key, request_id,
                     description, created_at)
                  VALUES (v_owner, p_kind[i], v_delta, v_balance, v_key, p_request[i],
                          p_description[i], clock_timestamp())
                  RETURNING l.id, l.event_type, l.amount, l.balance_after, l.idempotency_key,
                            l.created_at
                  INTO o_id, o_event_type, o_amount, o_balance_after, o_idempotency_key, o_created_at;
                o_reserved := v_reserved;
              END IF;
            END IF;
          END IF;
          RETURN NEXT;
        END LOOP;
        IF v_pending THEN
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
