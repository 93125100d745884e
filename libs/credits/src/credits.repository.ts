import { Injectable } from '@nestjs/common';
import { DatabaseService, Queryable } from '@app/database';
import {
  balanceLimitExceeded,
  isBalanceLimitViolation,
  isUniqueViolation,
  MAX_BALANCE,
} from './credits.errors';
import { CLOSE_KEY_PREFIX } from './ledger-keys';
import {
  BalanceChange,
  CreditAccount,
  CreditAudit,
  LedgerEntry,
  LedgerEventType,
  LedgerWrite,
} from './credits.types';

const LEDGER_COLUMNS =
  'id, user_id, event_type, amount, balance_after, idempotency_key, request_id, description, created_at';
const IDEMPOTENCY_CONSTRAINT = 'credit_ledger_user_idempotency_key';
const PRIMARY_KEY = 'credit_ledger_pkey';
/** Only one replica runs a billing-cycle round at a time (pg_try_advisory_xact_lock). */
const CYCLE_RESET_LOCK = 727_006;
const CYCLE_RESET_BATCH = 200;
/**
 * How far back a billing-cycle reset looks for holds still open. Requests and jobs close theirs
 * within minutes; an older open hold is an anomaly the audit lists (open_reservations).
 */
const OPEN_HOLD_HOURS = 24;
/** A hold (debit row `d`) that no settle or refund has closed: none carries its close key. */
const HOLD_NOT_CLOSED = `NOT EXISTS (
  SELECT 1 FROM credit_ledger c
  WHERE c.user_id = d.user_id AND c.idempotency_key = '${CLOSE_KEY_PREFIX}' || d.id::text)`;

interface LedgerRow {
  id: string;
  user_id: string;
  event_type: LedgerEventType;
  amount: string;
  balance_after: string;
  idempotency_key: string | null;
  request_id: string | null;
  description: string | null;
  created_at: Date;
}

export interface LedgerWriteInput {
  /** The row's id, when the caller names it (a credit hold: see CreditsService.reserve). */
  id?: string;
  userId: string;
  amount: number;
  eventType: LedgerEventType;
  idempotencyKey?: string | null;
  requestId?: string | null;
  description?: string | null;
}

export interface ClosedReservation {
  entry: LedgerEntry;
  reserved: number;
  replayed: boolean;
}

function toEntry(row: LedgerRow): LedgerEntry {
  return {
    id: row.id,
    userId: row.user_id,
    eventType: row.event_type,
    amount: Number(row.amount),
    balanceAfter: Number(row.balance_after),
    idempotencyKey: row.idempotency_key,
    requestId: row.request_id,
    description: row.description,
    createdAt: row.created_at,
  };
}

/** The key that closes a reservation: settle and refund share it, so only one of them happens. */
export function closeKeyOf(reservationId: string): string {
  return `${CLOSE_KEY_PREFIX}${reservationId}`;
}

/**
 * All credit SQL. The ledger is written by hand (no library does "balance and its ledger row in
 * one atomic step, never below zero, idempotent per key"): each balance change is a single
 * statement (or one transaction) that updates user_credits and appends the ledger row with its
 * balance_after, so balance = sum(amount) holds at every commit. Concurrency is Postgres's job:
 * the conditional UPDATE takes the row lock and re-checks `balance >= n` against the latest
 * version, so replicas can never overspend together.
 */
@Injectable()
export class CreditsRepository {
  constructor(private readonly db: DatabaseService) {}

  /**
   * Takes `amount` (> 0) from the balance only if the balance covers it, as one statement.
   * Returns null when it does not. With an idempotency key already used, or an `id` an earlier
   * attempt of the same debit wrote after all, returns that row.
   */
  async debit(input: LedgerWriteInput): Promise<LedgerWrite | null> {
    const key = input.idempotencyKey ?? null;
    try {
      const rows = await this.db.query<LedgerRow>(
        `WITH held AS (
           UPDATE user_credits SET balance = balance - $2::bigint, updated_at = now()
           WHERE user_id = $1 AND balance >= $2::bigint
           RETURNING balance
         )
         INSERT INTO credit_ledger (id, user_id, event_type, amount, balance_after, idempotency_key, request_id, description)
         SELECT coalesce($7::uuid, uuid_v7()), $1, $6, -$2::bigint, balance, $3, $4, $5 FROM held
         RETURNING ${LEDGER_COLUMNS}`,
        [
          input.userId,
          input.amount,
          key,
          input.requestId ?? null,
          input.description ?? null,
          input.eventType,
          input.id ?? null,
        ],
        'credits_debit',
      );
      if (rows.length > 0) return { entry: toEntry(rows[0]), replayed: false };
    } catch (err) {
      if (input.id !== undefined && isUniqueViolation(err, PRIMARY_KEY)) {
        // The id is taken: by this debit's earlier attempt, whose reply was lost, or by the void
        // that settled that attempt's doubt (then this one must not be written at all).
        const earlier = await this.findEntry(input.id);
        if (earlier?.eventType === input.eventType && earlier.userId === input.userId)
          return { entry: earlier, replayed: true };
        throw err;
      }
      if (key === null || !isUniqueViolation(err, IDEMPOTENCY_CONSTRAINT)) throw err;
    }
    if (key === null) return null;
    const existing = await this.findByKey(input.userId, key);
    return existing ? { entry: existing, replayed: true } : null;
  }

  /**
   * Adds `amount` (>= 0), creating the account row when the user has none yet. A repeated
   * idempotency key writes nothing and returns the original row. A sum above MAX_BALANCE is
   * refused by Postgres as a whole (400 balance_limit_exceeded).
   */
  async credit(input: LedgerWriteInput): Promise<LedgerWrite> {
    const key = input.idempotencyKey ?? null;
    try {
      const rows = await this.db.query<LedgerRow>(
        `WITH acct AS (
           INSERT INTO user_credits (user_id, balance) VALUES ($1, $2::bigint)
           ON CONFLICT (user_id) DO UPDATE
             SET balance = user_credits.balance + EXCLUDED.balance, updated_at = now()
           RETURNING balance
         )
         INSERT INTO credit_ledger (user_id, event_type, amount, balance_after, idempotency_key, request_id, description)
         SELECT $1, $6, $2::bigint, balance, $3, $4, $5 FROM acct
         RETURNING ${LEDGER_COLUMNS}`,
        [
          input.userId,
          input.amount,
          key,
          input.requestId ?? null,
          input.description ?? null,
          input.eventType,
        ],
        'credits_credit',
      );
      return { entry: toEntry(rows[0]), replayed: false };
    } catch (err) {
      const overLimit = isBalanceLimitViolation(err);
      if (!overLimit && (key === null || !isUniqueViolation(err, IDEMPOTENCY_CONSTRAINT)))
        throw err;
      // The statement failed as a whole: the balance did not move; the first write stands. (A
      // repeat at the limit fails on the balance before its ledger row meets the key.)
      const existing = key === null ? undefined : await this.findByKey(input.userId, key);
      if (existing) return { entry: existing, replayed: true };
      throw overLimit ? balanceLimitExceeded(input.amount) : err;
    }
  }

  /**
   * Closes the debit `reservationId`: `actual` is what the request finally costs (null = refund
   * it all). Usage under the hold gives the difference back; usage over it takes the extra only
   * as far as the balance goes (never below zero); a close already made is answered as a replay.
   * What would come back above MAX_BALANCE (the account was filled up while the hold was open)
   * is not returned: the balance stops at the limit and the row's description says so.
   * Returns undefined when no such debit exists. This is the general path, under the account's
   * row lock; the common case (an open hold, usage within it) is group-committed by
   * LedgerBatcher, and only what that cannot do comes here.
   */
  async closeReservation(
    reservationId: string,
    actual: number | null,
    requestId: string | null,
    description: string,
  ): Promise<ClosedReservation | undefined> {
    const key = closeKeyOf(reservationId);
    let userId: string | undefined;
    let reserved = 0;
    try {
      return await this.db.transaction(async (tx) => {
        // Lock the account first: every ledger write for this user waits behind us from here.
        const [held] = await tx.query<{ user_id: string; reserved: string; balance: string }>(
          `SELECT d.user_id, -d.amount AS reserved, uc.balance
             FROM credit_ledger d JOIN user_credits uc ON uc.user_id = d.user_id
             WHERE d.id = $1 AND d.event_type = 'debit'
             FOR UPDATE OF uc`,
          [reservationId],
        );
        if (!held) return undefined;
        userId = held.user_id;
        reserved = Number(held.reserved);
        const closed = await this.findByKey(held.user_id, key, tx);
        if (closed) return { entry: closed, reserved, replayed: true };

        const balance = Number(held.balance);
        let delta: number;
        if (actual === null) delta = reserved;
        else if (actual <= reserved) delta = reserved - actual;
        else delta = -Math.min(balance, actual - reserved);
        let note = description;
        if (delta > MAX_BALANCE - balance) {
          note = `${description} (capped: ${delta - (MAX_BALANCE - balance)} credits above the maximum balance not returned)`;
          delta = MAX_BALANCE - balance;
        }
        const rows = await tx.query<LedgerRow>(
          `WITH acct AS (
               UPDATE user_credits SET balance = balance + $2::bigint, updated_at = now()
               WHERE user_id = $1
               RETURNING balance
             )
             INSERT INTO credit_ledger (user_id, event_type, amount, balance_after, idempotency_key, request_id, description)
             SELECT $1, $6, $2::bigint, balance, $3, $4, $5 FROM acct
             RETURNING ${LEDGER_COLUMNS}`,
          [held.user_id, delta, key, requestId, note, actual === null ? 'refund' : 'settle'],
        );
        return { entry: toEntry(rows[0]), reserved, replayed: false };
      }, 'credits_close');
    } catch (err) {
      if (userId === undefined || !isUniqueViolation(err, IDEMPOTENCY_CONSTRAINT)) throw err;
      const closed = await this.findByKey(userId, key);
      if (!closed) throw err;
      return { entry: closed, reserved, replayed: true };
    }
  }

  /**
   * Settles a credit hold whose write is in doubt (sent, never answered): refunds debit `holdId`
   * if it was written; if not, writes a `void` row (amount 0) under its id, so that the hold, if
   * it is still on its way, fails on the primary key instead of taking credits. Whichever of the
   * two commits first wins. 'voided' also when an earlier call voided it; undefined when the user
   * has no account (no hold of theirs can ever be written).
   */
  async settleHoldInDoubt(
    hold: { id: string; userId: string; requestId: string | null },
    description: string,
  ): Promise<'voided' | ClosedReservation | undefined> {
    const voided = await this.db.query(
      `WITH acct AS (SELECT balance FROM user_credits WHERE user_id = $2 FOR UPDATE)
       INSERT INTO credit_ledger (id, user_id, event_type, amount, balance_after, request_id, description)
       SELECT $1, $2, 'void', 0, balance, $3, $4 FROM acct
       ON CONFLICT (id) DO NOTHING
       RETURNING id`,
      [hold.id, hold.userId, hold.requestId, description],
      'credits_void',
    );
    if (voided.length > 0) return 'voided';
    const closed = await this.closeReservation(hold.id, null, hold.requestId, description);
    if (closed) return closed;
    return (await this.findEntry(hold.id))?.eventType === 'void' ? 'voided' : undefined;
  }

  async findByKey(
    userId: string,
    key: string,
    tx: Queryable = this.db,
  ): Promise<LedgerEntry | undefined> {
    const rows = await tx.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM credit_ledger WHERE user_id = $1 AND idempotency_key = $2`,
      [userId, key],
    );
    return rows[0] ? toEntry(rows[0]) : undefined;
  }

  /** The open debit of a request (for an operator's refund), newest first. */
  async debitsOfRequest(requestId: string): Promise<LedgerEntry[]> {
    const rows = await this.db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM credit_ledger
       WHERE request_id = $1 AND event_type = 'debit'
       ORDER BY created_at DESC, id DESC`,
      [requestId],
    );
    return rows.map(toEntry);
  }

  async findEntry(id: string): Promise<LedgerEntry | undefined> {
    const rows = await this.db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM credit_ledger WHERE id = $1`,
      [id],
    );
    return rows[0] ? toEntry(rows[0]) : undefined;
  }

  async account(userId: string): Promise<CreditAccount | undefined> {
    const rows = await this.db.query<{
      balance: string;
      base_quota: string;
      billing_cycle_end: Date | null;
    }>(
      `SELECT balance, base_quota, billing_cycle_end FROM user_credits WHERE user_id = $1`,
      [userId],
      'credits_balance',
    );
    if (!rows[0]) return undefined;
    return {
      userId,
      balance: Number(rows[0].balance),
      baseQuota: Number(rows[0].base_quota),
      billingCycleEnd: rows[0].billing_cycle_end,
    };
  }

  /**
   * Creates the account (or updates its base quota). A positive quota starts a monthly billing
   * cycle; the balance itself only ever moves through ledger rows.
   */
  async upsertAccount(userId: string, baseQuota: number): Promise<void> {
    await this.db.query(
      `INSERT INTO user_credits (user_id, balance, base_quota, billing_cycle_end)
       VALUES ($1, 0, $2::bigint, CASE WHEN $2::bigint > 0 THEN now() + interval '1 month' END)
       ON CONFLICT (user_id) DO UPDATE SET
         base_quota = EXCLUDED.base_quota,
         billing_cycle_end = COALESCE(user_credits.billing_cycle_end, EXCLUDED.billing_cycle_end),
         updated_at = now()`,
      [userId, baseQuota],
    );
  }

  async userExists(userId: string): Promise<boolean> {
    const rows = await this.db.query(`SELECT 1 FROM users WHERE id = $1`, [userId]);
    return rows.length > 0;
  }

  /** Newest first; `afterId` is the last row of the previous page (compared inside Postgres). */
  async ledgerPage(userId: string, limit: number, afterId?: string): Promise<LedgerEntry[]> {
    const params: unknown[] = [userId, limit];
    let after = '';
    if (afterId) {
      params.push(afterId);
      after = `AND (created_at, id) < (SELECT c.created_at, c.id FROM credit_ledger c WHERE c.id = $3 AND c.user_id = $1)`;
    }
    const rows = await this.db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM credit_ledger
       WHERE user_id = $1 ${after}
       ORDER BY created_at DESC, id DESC
       LIMIT $2`,
      params,
      'credits_ledger_page',
    );
    return rows.map(toEntry);
  }

  /**
   * Sets balances back to the sum of their ledger (seed 004 "Fix Credit Discrepancies"). Finds
   * candidates without locks, then fixes each under its row lock so a concurrent request cannot
   * slip a ledger row between the sum and the update. A negative sum, or one above MAX_BALANCE,
   * cannot be a balance: it is reported, not applied.
   */
  async recalculate(
    userId?: string,
  ): Promise<{ changed: BalanceChange[]; unfixable: { userId: string; ledgerSum: number }[] }> {
    const filter = userId ? 'AND u.user_id = $1' : '';
    const params = userId ? [userId] : [];
    const candidates = await this.db.query<{ user_id: string }>(
      `SELECT u.user_id FROM (
         SELECT uc.user_id, uc.balance, COALESCE(s.total, 0) AS total
         FROM user_credits uc
         LEFT JOIN (SELECT user_id, SUM(amount) AS total FROM credit_ledger GROUP BY user_id) s
           ON s.user_id = uc.user_id
         UNION ALL
         SELECT l.user_id, NULL, SUM(l.amount) FROM credit_ledger l
         WHERE NOT EXISTS (SELECT 1 FROM user_credits uc WHERE uc.user_id = l.user_id)
         GROUP BY l.user_id
       ) u
       WHERE u.balance IS DISTINCT FROM u.total ${filter}`,
      params,
    );
    const changed: BalanceChange[] = [];
    const unfixable: { userId: string; ledgerSum: number }[] = [];
    for (const { user_id } of candidates) {
      await this.db.transaction(async (tx) => {
        await tx.query(
          `INSERT INTO user_credits (user_id, balance) VALUES ($1, 0) ON CONFLICT (user_id) DO NOTHING`,
          [user_id],
        );
        const [acct] = await tx.query<{ balance: string }>(
          `SELECT balance FROM user_credits WHERE user_id = $1 FOR UPDATE`,
          [user_id],
        );
        const [sum] = await tx.query<{ total: string }>(
          `SELECT COALESCE(SUM(amount), 0) AS total FROM credit_ledger WHERE user_id = $1`,
          [user_id],
        );
        const oldBalance = Number(acct.balance);
        const total = Number(sum.total);
        if (oldBalance === total) return;
        if (total < 0 || total > MAX_BALANCE) {
          unfixable.push({ userId: user_id, ledgerSum: total });
          return;
        }
        await tx.query(
          `UPDATE user_credits SET balance = $2::bigint, updated_at = now() WHERE user_id = $1`,
          [user_id, total],
        );
        changed.push({ userId: user_id, oldBalance, newBalance: total });
      }, 'credits_recalculate');
    }
    return { changed, unfixable };
  }

  /** Everything that should be empty on a healthy system (GET /admin/credits/audit). */
  async audit(openReservationMinutes: number, limit = 1000): Promise<CreditAudit> {
    const mismatches = await this.db.query<{ user_id: string; balance: string; total: string }>(
      `SELECT uc.user_id, uc.balance, COALESCE(s.total, 0) AS total
       FROM user_credits uc
       LEFT JOIN (SELECT user_id, SUM(amount) AS total FROM credit_ledger GROUP BY user_id) s
         ON s.user_id = uc.user_id
       WHERE uc.balance <> COALESCE(s.total, 0)
       ORDER BY uc.user_id LIMIT $1`,
      [limit],
    );
    const negatives = await this.db.query<{ user_id: string; balance: string }>(
      `SELECT user_id, balance FROM user_credits WHERE balance < 0 ORDER BY user_id LIMIT $1`,
      [limit],
    );
    const negativeRows = await this.db.query<{
      id: string;
      user_id: string;
      balance_after: string;
    }>(`SELECT id, user_id, balance_after FROM credit_ledger WHERE balance_after < 0 LIMIT $1`, [
      limit,
    ]);
    const duplicates = await this.db.query<{
      user_id: string;
      idempotency_key: string;
      count: string;
    }>(
      `SELECT user_id, idempotency_key, COUNT(*) AS count FROM credit_ledger
       WHERE idempotency_key IS NOT NULL
       GROUP BY user_id, idempotency_key HAVING COUNT(*) > 1
       ORDER BY user_id LIMIT $1`,
      [limit],
    );
    const open = await this.db.query<LedgerRow>(
      `SELECT ${LEDGER_COLUMNS} FROM credit_ledger d
       WHERE d.event_type = 'debit'
         AND d.created_at < now() - make_interval(mins => $1::int)
         AND ${HOLD_NOT_CLOSED}
       ORDER BY d.created_at LIMIT $2`,
      [openReservationMinutes, limit],
    );
    const result: CreditAudit = {
      balance_mismatches: mismatches.map((r) => ({
        user_id: r.user_id,
        balance: Number(r.balance),
        ledger_sum: Number(r.total),
      })),
      negative_balances: negatives.map((r) => ({ user_id: r.user_id, balance: Number(r.balance) })),
      negative_ledger_rows: negativeRows.map((r) => ({
        id: r.id,
        user_id: r.user_id,
        balance_after: Number(r.balance_after),
      })),
      duplicate_idempotency_keys: duplicates.map((r) => ({
        user_id: r.user_id,
        idempotency_key: r.idempotency_key,
        count: Number(r.count),
      })),
      open_reservations: open.map((r) => ({
        reservation_id: r.id,
        user_id: r.user_id,
        amount: -Number(r.amount),
        request_id: r.request_id,
        created_at: r.created_at.toISOString(),
      })),
      healthy: false,
    };
    result.healthy =
      result.balance_mismatches.length === 0 &&
      result.negative_balances.length === 0 &&
      result.negative_ledger_rows.length === 0 &&
      result.duplicate_idempotency_keys.length === 0 &&
      result.open_reservations.length === 0;
    return result;
  }

  /**
   * Resets every account whose billing cycle has ended to its base quota (one `cycle_reset` row
   * per user and cycle, keyed by the cycle's end so a second run is a no-op) and moves the
   * cycle end forward by whole months. Without `userId` it is the scheduler's round: only the
   * replica holding the advisory lock works; the others return at once.
   */
  async resetDueCycles(userId?: string): Promise<LedgerEntry[]> {
    return this.db.transaction(async (tx) => {
      if (!userId) {
        const [lock] = await tx.query<{ locked: boolean }>(
          `SELECT pg_try_advisory_xact_lock($1) AS locked`,
          [CYCLE_RESET_LOCK],
        );
        if (!lock.locked) return [];
        // Accounts given a quota without a cycle (rows written before user creation started
        // it, or by hand) start their cycle now.
        await tx.query(
          `UPDATE user_credits SET billing_cycle_end = now() + interval '1 month', updated_at = now()
           WHERE billing_cycle_end IS NULL AND base_quota > 0`,
        );
      }
      const due = await tx.query<{
        user_id: string;
        balance: string;
        base_quota: string;
        reset_key: string;
      }>(
        // The key's prefix is CYCLE_RESET_KEY_PREFIX (ledger-keys.ts), refused for admin keys.
        `SELECT user_id, balance, base_quota,
             'cycle_reset:' || to_char(billing_cycle_end AT TIME ZONE 'UTC',
               'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS reset_key
           FROM user_credits
           WHERE billing_cycle_end IS NOT NULL AND billing_cycle_end <= now()
             ${userId ? 'AND user_id = $2' : ''}
           ORDER BY billing_cycle_end
           LIMIT $1
           FOR UPDATE SKIP LOCKED`,
        userId ? [CYCLE_RESET_BATCH, userId] : [CYCLE_RESET_BATCH],
      );
      const written: LedgerEntry[] = [];
      for (const row of due) {
        // Holds of requests in flight give their unused part back when they close, after the
        // reset: counted as spent from the new quota, or that part would roll over (the balance
        // ending above base_quota). The account's row lock, taken above, keeps the set still.
        const [open] = await tx.query<{ held: string }>(
          `SELECT COALESCE(SUM(-d.amount), 0) AS held FROM credit_ledger d
            WHERE d.user_id = $1 AND d.event_type = 'debit'
              AND d.created_at > now() - make_interval(hours => $2::int)
              AND ${HOLD_NOT_CLOSED}`,
          [row.user_id, OPEN_HOLD_HOURS],
        );
        const held = Number(open.held);
        const balance = Math.max(0, Number(row.base_quota) - held);
        const description =
          held > 0
            ? `Billing cycle reset to base quota, less ${held} held by requests in flight`
            : 'Billing cycle reset to base quota';
        // Whole months from the old end (anchored, so Jan 31 does not drift to the 28th).
        const rows = await tx.query<LedgerRow>(
          `WITH acct AS (
               UPDATE user_credits uc SET
                 balance = $2::bigint,
                 billing_cycle_end = (
                   SELECT uc.billing_cycle_end + make_interval(months => k)
                   FROM generate_series(1, 1200) AS k
                   WHERE uc.billing_cycle_end + make_interval(months => k) > now()
                   ORDER BY k LIMIT 1),
                 updated_at = now()
               WHERE uc.user_id = $1
               RETURNING uc.balance
             )
             INSERT INTO credit_ledger (user_id, event_type, amount, balance_after, idempotency_key, description)
             SELECT $1, 'cycle_reset', $3::bigint, balance, $4, $5 FROM acct
             RETURNING ${LEDGER_COLUMNS}`,
          [row.user_id, balance, balance - Number(row.balance), row.reset_key, description],
        );
        written.push(toEntry(rows[0]));
      }
      return written;
    }, 'credits_cycle_reset');
  }
}
