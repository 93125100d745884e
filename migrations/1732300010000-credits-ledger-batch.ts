import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Group commit for the credit ledger (issue 10). `credits_apply_batch` applies many reserves
 * (debit) and closes (settle/refund) in one statement, so one transaction and one WAL flush
 * carry a whole batch of requests instead of one each. Each operation keeps the rules of
 * CreditsRepository: a debit only when the balance covers it (its `debit` statement), a close
 * only of an open debit and within its hold; anything else is answered 'insufficient' or
 * 'slow' and the caller takes the one-at-a-time path (`closeReservation`, under the row lock).
 *
 * Operations are applied in array order; the caller sorts them by user so that two batches lock
 * accounts in the same order. An account's first change updates its row, which locks it for the
 * rest of the transaction; its later operations in the batch are checked and applied to the
 * balance in memory and written with one more update when the batch moves on. A busy account
 * (one API key under load) thus writes two row versions per batch instead of one per operation,
 * and a batch with one operation per account runs one statement per operation. Rows get
 * clock_timestamp(), not the transaction's now(), so the ledger's newest-first order within a
 * batch is the order the rows were written in.
 */
export class CreditsLedgerBatch1732300010000 implements MigrationInterface {
  name = 'CreditsLedgerBatch1732300010000';

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

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `DROP FUNCTION IF EXISTS credits_apply_batch(text[], uuid[], uuid[], bigint[], text[], text[])`,
    );
  }
}
