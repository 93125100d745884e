import { Injectable } from '@nestjs/common';
import { DatabaseService, databaseUnavailable, PreparedStatement } from '@app/database';
import { histogram } from '@app/observability';
import { LedgerEntry, LedgerEventType } from './credits.types';

/** Upper bound on one statement's work; a longer queue is flushed in several statements. */
const MAX_BATCH = 256;
/**
 * Batch statements one process keeps in flight. With one, the database sat idle while the
 * gateway read a batch's reply and sent the next; with two, the next batch is already waiting on
 * the account's row lock and runs the moment the first commits (c=64: +7 % and +10 % req/s in two
 * same-run comparisons). Four was slower than two: more, smaller commits.
 */
const MAX_IN_FLIGHT = 2;
/**
 * How long an operation nobody is waiting for (a settle after the response) may wait for company:
 * the same account's next hold usually comes within it, and both then share one statement and
 * one commit instead of the hold queueing behind the settle's.
 */
const PATIENT_MS = 5;

/** Every batch runs this one statement, so each connection prepares it once. */
export const APPLY_BATCH: PreparedStatement = {
  name: 'credits_apply_batch',
  text: `SELECT * FROM credits_apply_batch($1::text[], $2::uuid[], $3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::uuid[])`,
};

export const creditBatchSize = histogram(
  'gateway_credit_batch_size',
  'Reserves and closes written to the ledger by one statement (group commit)',
  [],
  [1, 2, 4, 8, 16, 32, 64, 128, 256],
);

export interface BatchDebit {
  kind: 'debit';
  /** The ledger id the debit gets: named by the gateway, so a write in doubt can be found. */
  id: string;
  userId: string;
  amount: number;
  requestId: string | null;
  description: string;
}

export interface BatchClose {
  kind: 'settle' | 'refund';
  userId: string;
  reservationId: string;
  /** What the request cost (settle); null for a refund. */
  actual: number | null;
  requestId: string | null;
  description: string;
}

export type BatchOp = BatchDebit | BatchClose;

/**
 * ok: written (entry, and for a close the amount that had been held); insufficient: a debit
 * the balance cannot cover; slow: a close the batch does not handle (no such open debit, usage
 * over the hold, closed before) — the caller runs the one-at-a-time path, which knows them all.
 */
export type BatchResult =
  | { status: 'ok'; entry: LedgerEntry; reserved: number | null }
  | { status: 'insufficient' }
  | { status: 'slow' };

interface Pending {
  op: BatchOp;
  resolve(result: BatchResult): void;
  reject(err: unknown): void;
}

interface BatchRow {
  o_ord: number;
  o_status: 'ok' | 'insufficient' | 'slow';
  o_id: string | null;
  o_event_type: LedgerEventType | null;
  o_amount: string | null;
  o_balance_after: string | null;
  o_idempotency_key: string | null;
  o_created_at: Date | null;
  o_reserved: string | null;
}

/**
 * Group commit for reserves and closes. Every billed request writes the ledger twice, and each
 * write on its own is a commit that waits for the WAL flush while holding the user's balance
 * row, so one user's requests queued behind each other at one commit each. Here at most
 * MAX_IN_FLIGHT batch statements are in flight per process: an operation that arrives while they
 * are all busy waits for the next statement together with everything else that arrived
 * meanwhile. With a statement free an operation goes at once, so a lone request waits for
 * nothing extra. Two statements of one process touching one account are like two replicas':
 * the second waits for the first's row lock, and the sorted order keeps them from deadlocking.
 *
 * A failing statement (database away, a race on a close key) rolls its whole batch back and
 * each of its operations rejects with that error; CreditsService then does each one alone on
 * the repository's path (the debit statement, or the close under the account's row lock).
 */
@Injectable()
export class LedgerBatcher {
  private queue: Pending[] = [];
  private flushers = 0;
  private patientTimer?: NodeJS.Timeout;

  constructor(private readonly db: DatabaseService) {}

  /** `patient`: nobody waits for this one; it goes with the next batch, or after PATIENT_MS. */
  apply(op: BatchOp, patient = false): Promise<BatchResult> {
    // With the database flagged unreachable, waiting behind statements that may hang until
    // their query timeout helps nobody: fail now, as DatabaseService.query would.
    if (!this.db.isReachable) return Promise.reject(databaseUnavailable());
    return new Promise<BatchResult>((resolve, reject) => {
      this.queue.push({ op, resolve, reject });
      if (!patient) this.startFlush();
      else
        this.patientTimer ??= setTimeout(() => {
          this.patientTimer = undefined;
          this.startFlush();
        }, PATIENT_MS);
    });
  }

  private startFlush(): void {
    if (this.flushers < MAX_IN_FLIGHT && this.queue.length > 0) void this.flush();
  }

  private async flush(): Promise<void> {
    this.flushers++;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, MAX_BATCH);
        await this.write(batch);
      }
    } finally {
      this.flushers--;
    }
  }

  private async write(batch: Pending[]): Promise<void> {
    // One lock order for every batch of every replica: two batches touching the same accounts
    // wait for each other instead of deadlocking.
    batch.sort((a, b) => (a.op.userId < b.op.userId ? -1 : a.op.userId > b.op.userId ? 1 : 0));
    creditBatchSize.observe(batch.length);
    let rows: BatchRow[];
    try {
      rows = await this.db.query<BatchRow>(
        APPLY_BATCH,
        [
          batch.map((p) => p.op.kind),
          batch.map((p) => p.op.userId),
          batch.map((p) => (p.op.kind === 'debit' ? null : p.op.reservationId)),
          batch.map((p) => (p.op.kind === 'debit' ? p.op.amount : p.op.actual)),
          batch.map((p) => p.op.requestId),
          batch.map((p) => p.op.description),
          batch.map((p) => (p.op.kind === 'debit' ? p.op.id : null)),
        ],
        'credits_batch',
      );
    } catch (err) {
      for (const pending of batch) pending.reject(err);
      return;
    }
    for (const row of rows) {
      const pending = batch[row.o_ord - 1];
      pending.resolve(toResult(row, pending.op));
    }
  }
}

function toResult(row: BatchRow, op: BatchOp): BatchResult {
  if (row.o_status !== 'ok') return { status: row.o_status };
  return {
    status: 'ok',
    reserved: row.o_reserved === null ? null : Number(row.o_reserved),
    entry: {
      id: row.o_id!,
      userId: op.userId,
      eventType: row.o_event_type!,
      amount: Number(row.o_amount),
      balanceAfter: Number(row.o_balance_after),
      idempotencyKey: row.o_idempotency_key,
      requestId: op.requestId,
      description: op.description,
      createdAt: row.o_created_at!,
    },
  };
}
