import { MigrationInterface, QueryRunner } from 'typeorm';
import { creditsApplyBatchSql } from './1732300012000-credits-ledger-batch-rows';

const OLD_EVENT_TYPES = `'grant', 'debit', 'refund', 'settle', 'admin_adjustment', 'cycle_reset'`;
const EVENT_TYPE_CHECK = 'credit_ledger_event_type_check';

/**
 * Credit holds whose write is in doubt (the statement was sent, its reply never came: a crash,
 * a freeze, a partition) can be closed without an operator. The gateway names each hold's ledger
 * id before sending it (`credits_apply_batch` gains a seventh argument, `p_id`; the six-argument
 * version stays for replicas of the previous release during a rolling deploy), and later either
 * refunds that debit, if it was written, or writes a `void` row (amount 0) under the same id, if
 * it was not. The primary key then decides between a hold arriving late and its void: whichever
 * commits first wins and the other fails, so a late hold can never take credits nobody refunds.
 *
 * Outside a transaction, so that checking a large credit_ledger does not block billing: the
 * widened CHECK is added NOT VALID in the same statement that drops the old one (a brief
 * exclusive lock), then validated under a lock that lets reads and writes go on.
 */
export class LedgerHoldIds1732300018000 implements MigrationInterface {
  name = 'LedgerHoldIds1732300018000';
  transaction = false;

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE credit_ledger DROP CONSTRAINT IF EXISTS ${EVENT_TYPE_CHECK},
         ADD CONSTRAINT ${EVENT_TYPE_CHECK}
           CHECK (event_type IN (${OLD_EVENT_TYPES}, 'void')) NOT VALID`,
    );
    await q.query(`ALTER TABLE credit_ledger VALIDATE CONSTRAINT ${EVENT_TYPE_CHECK}`);
    await q.query(creditsApplyBatchSql('uuid_v7()', { holdIds: true }));
  }

  /**
   * Void rows move no credits (amount 0), so deleting them leaves every balance and the audit's
   * sums as they were; they only record that a hold in doubt was never written.
   */
  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `DROP FUNCTION IF EXISTS credits_apply_batch(text[], uuid[], uuid[], bigint[], text[], text[], uuid[])`,
    );
    await q.query(`DELETE FROM credit_ledger WHERE event_type = 'void'`);
    await q.query(
      `ALTER TABLE credit_ledger DROP CONSTRAINT IF EXISTS ${EVENT_TYPE_CHECK},
         ADD CONSTRAINT ${EVENT_TYPE_CHECK} CHECK (event_type IN (${OLD_EVENT_TYPES})) NOT VALID`,
    );
    await q.query(`ALTER TABLE credit_ledger VALIDATE CONSTRAINT ${EVENT_TYPE_CHECK}`);
  }
}
