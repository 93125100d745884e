import { MigrationInterface, QueryRunner } from 'typeorm';
import { creditsApplyBatchSql } from './1732300012000-credits-ledger-batch-rows';

/**
 * Time-ordered ids for new ledger rows and request logs, the two tables every billed request
 * writes to: UUIDv7 (RFC 9562), 48 bits of Unix milliseconds, then the version and 74 random
 * bits, instead of gen_random_uuid()'s fully random v4 (issue 10, docs/performance.md item 21).
 * A random key lands anywhere in its primary key's B-tree (and, through a close's
 * `close:<debit id>`, in the ledger's idempotency key's), so on a large table every insert
 * dirties a page of its own, and after each checkpoint writes that whole page to the WAL again.
 * Time-ordered keys append at the right edge. Rows written before keep their ids; ids are still
 * uuids and nothing orders or pages by them alone (the ledger pages by created_at, then id).
 */
export class TimeOrderedIds1732300014000 implements MigrationInterface {
  name = 'TimeOrderedIds1732300014000';

  async up(q: QueryRunner): Promise<void> {
    // gen_random_uuid()'s 122 random bits with the first 48 replaced by the time in ms, and the
    // version nibble turned from 4 (0100) into 7 (0111) by setting bits 52 and 53.
    await q.query(`
      CREATE FUNCTION uuid_v7() RETURNS uuid LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
        SELECT encode(
          set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
          'hex')::uuid
      $$`);
    await q.query(`ALTER TABLE credit_ledger ALTER COLUMN id SET DEFAULT uuid_v7()`);
    await q.query(creditsApplyBatchSql('uuid_v7()'));
    // On the partitioned table: its partitions, present and future, take the same default.
    await q.query(`ALTER TABLE request_logs ALTER COLUMN id SET DEFAULT uuid_v7()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE request_logs ALTER COLUMN id SET DEFAULT gen_random_uuid()`);
    await q.query(creditsApplyBatchSql('gen_random_uuid()'));
    await q.query(`ALTER TABLE credit_ledger ALTER COLUMN id SET DEFAULT gen_random_uuid()`);
    await q.query(`DROP FUNCTION uuid_v7()`);
  }
}
