import { Injectable } from '@nestjs/common';
import { DatabaseService, Queryable } from '@app/database';
import type { SessionStatus } from './session-health.policy';

/** Sessions read per acquire: the least recently used ones a concurrent acquire may skip. */
const ACQUIRE_CANDIDATES = 16;

export interface SessionRow {
  id: string;
  provider: string;
  cookie_text: string;
  cookie_hash: string;
  status: SessionStatus;
  failure_count: number;
  success_count: number;
  failure_rate: number;
  recent_outcomes: string;
  cooldown_until: Date | null;
  last_used_at: Date | null;
  last_checked_at: Date | null;
  quarantined_at: Date | null;
  expires_at: Date | null;
  metadata: Record<string, unknown>;
  created_at: Date;
}

export interface NewSession {
  provider: string;
  cookieText: string;
  cookieHash: string;
  metadata: Record<string, unknown>;
  expiresAt: Date | null;
}

const UNIQUE_VIOLATION = '23505';

/**
 * TypeORM answers UPDATE/DELETE with `[rows, rowCount]` instead of rows; every statement here
 * goes through this so RETURNING reads the same whatever the command.
 */
function rowsOf<T>(result: unknown): T[] {
  if (
    Array.isArray(result) &&
    result.length === 2 &&
    Array.isArray(result[0]) &&
    typeof result[1] === 'number'
  )
    return result[0] as T[];
  return result as T[];
}

/** failure_rate of a window expression, in SQL (kept equal to failureRate() in the policy). */
const rateOf = (w: string) =>
  `(length(${w}) - length(replace(${w}, 'f', '')))::float8 / greatest(length(${w}), 1)`;

/** All SQL of the sessions table. */
@Injectable()
export class SessionsRepository {
  constructor(private readonly db: DatabaseService) {}

  private async sql<T = Record<string, unknown>>(
    text: string,
    params: unknown[],
    operation: string,
  ): Promise<T[]> {
    return rowsOf<T>(await this.db.query(text, params, operation));
  }

  /** Returns null when a session with the same credential already exists. */
  async insert(session: NewSession): Promise<SessionRow | null> {
    try {
      const rows = await this.sql<SessionRow>(
        `INSERT INTO sessions (provider, cookie_text, cookie_hash, metadata, expires_at)
         VALUES ($1, $2, $3, $4, $5) RETURNING *`,
        [
          session.provider,
          session.cookieText,
          session.cookieHash,
          JSON.stringify(session.metadata),
          session.expiresAt,
        ],
        'sessions.insert',
      );
      return rows[0];
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) return null;
      throw err;
    }
  }

  list(): Promise<SessionRow[]> {
    return this.sql<SessionRow>(
      `SELECT * FROM sessions ORDER BY created_at, id`,
      [],
      'sessions.list',
    );
  }

  async findById(id: string): Promise<SessionRow | null> {
    const rows = await this.sql<SessionRow>(
      `SELECT * FROM sessions WHERE id = $1`,
      [id],
      'sessions.find',
    );
    return rows[0] ?? null;
  }

  /**
   * Takes the least recently used usable session of a provider and stamps it in one statement.
   * SKIP LOCKED lets concurrent requests on every replica take different rows instead of
   * queueing on the same one; clock_timestamp() keeps the order strict within a transaction.
   * The candidates are read from the statement's snapshot and a row is only taken if its
   * last_used_at is still the one read: a row another acquire stamped and committed after our
   * snapshot fails that re-check when we lock it (Postgres re-evaluates the conditions on the
   * newest version) and is skipped, so concurrent callers get different sessions while there
   * are enough. When every usable row is busy at that instant (more requests in flight than
   * sessions), nothing is left: then share the least recently used one, waiting for its lock
   * (each lasts one statement), rather than answer 503 no_healthy_sessions.
   */
  async acquire(
    provider: string,
  ): Promise<Pick<SessionRow, 'id' | 'cookie_text' | 'cookie_hash'> | null> {
    const usable = `provider = $1 AND status = 'healthy'
             AND (expires_at IS NULL OR expires_at > now())
             AND (cooldown_until IS NULL OR cooldown_until <= now())`;
    const stamp = (pick: string) =>
      this.sql<Pick<SessionRow, 'id' | 'cookie_text' | 'cookie_hash'>>(
        `UPDATE sessions SET last_used_at = clock_timestamp()
         WHERE id = (${pick})
         RETURNING id, cookie_text, cookie_hash`,
        [provider],
        'sessions.acquire',
      );
    const untaken = await stamp(
      `WITH seen AS MATERIALIZED (
         SELECT id, last_used_at FROM sessions WHERE ${usable}
         ORDER BY last_used_at NULLS FIRST, id LIMIT ${ACQUIRE_CANDIDATES})
       SELECT s.id FROM seen JOIN sessions s ON s.id = seen.id
       WHERE s.last_used_at IS NOT DISTINCT FROM seen.last_used_at AND s.status = 'healthy'
       ORDER BY seen.last_used_at NULLS FIRST, seen.id
       LIMIT 1
       FOR UPDATE OF s SKIP LOCKED`,
    );
    if (untaken[0]) return untaken[0];
    const shared = await stamp(
      `SELECT id FROM sessions WHERE ${usable}
       ORDER BY last_used_at NULLS FIRST, id LIMIT 1 FOR UPDATE`,
    );
    return shared[0] ?? null;
  }

  /** Successes only lower the rate and never change a status, so a batch is one statement. */
  async applySuccesses(ids: string[], counts: number[], window: number): Promise<void> {
    const w = `right(s.recent_outcomes || repeat('s', u.k), $3)`;
    await this.sql(
      `UPDATE sessions s SET
         recent_outcomes = ${w},
         success_count = s.success_count + u.k,
         failure_rate = ${rateOf(w)}
       FROM unnest($1::uuid[], $2::int[]) AS u(id, k)
       WHERE s.id = u.id`,
      [ids, counts, window],
      'sessions.successes',
    );
  }

  /** Runs `work` with the row locked, so concurrent outcomes on every replica serialize. */
  withLockedRow<T>(
    id: string,
    work: (row: SessionRow | null, tx: Queryable) => Promise<T>,
  ): Promise<T> {
    return this.db.transaction(async (tx) => {
      const rows = rowsOf<SessionRow>(
        await tx.query(`SELECT * FROM sessions WHERE id = $1 FOR UPDATE`, [id]),
      );
      return work(rows[0] ?? null, tx);
    }, 'sessions.outcome');
  }

  async saveHealth(
    tx: Queryable,
    id: string,
    change: {
      status: SessionStatus;
      recentOutcomes: string;
      failureRate: number;
      successDelta: number;
      failureDelta: number;
      quarantinedNow: boolean;
      cooldownSeconds: number | null;
    },
  ): Promise<void> {
    await tx.query(
      `UPDATE sessions SET
         status = $2, recent_outcomes = $3, failure_rate = $4,
         success_count = success_count + $5, failure_count = failure_count + $6,
         quarantined_at = CASE WHEN $7::boolean THEN now() ELSE quarantined_at END,
         cooldown_until = CASE WHEN $8::int IS NULL THEN cooldown_until
                               ELSE now() + make_interval(secs => $8::int) END
       WHERE id = $1`,
      [
        id,
        change.status,
        change.recentOutcomes,
        change.failureRate,
        change.successDelta,
        change.failureDelta,
        change.quarantinedNow,
        change.cooldownSeconds,
      ],
    );
  }

  /** Back in rotation with a clean window, so old failures do not re-quarantine it at once. */
  async activate(id: string): Promise<SessionRow | null> {
    const rows = await this.sql<SessionRow>(
      `UPDATE sessions SET status = 'healthy', recent_outcomes = '', failure_rate = 0,
         quarantined_at = NULL, cooldown_until = NULL
       WHERE id = $1 RETURNING *`,
      [id],
      'sessions.activate',
    );
    return rows[0] ?? null;
  }

  async quarantine(id: string): Promise<SessionRow | null> {
    const rows = await this.sql<SessionRow>(
      `UPDATE sessions SET status = 'quarantined', quarantined_at = now()
       WHERE id = $1 RETURNING *`,
      [id],
      'sessions.quarantine',
    );
    return rows[0] ?? null;
  }

  async delete(id: string): Promise<boolean> {
    const rows = await this.sql(
      `DELETE FROM sessions WHERE id = $1 RETURNING id`,
      [id],
      'sessions.delete',
    );
    return rows.length > 0;
  }

  /**
   * Records a probe's verdict. Only applies while the session is still quarantined, so an admin
   * who activated or disabled it during the round keeps the last word.
   */
  async settleProbe(id: string, verdict: 'pass' | 'unauthorized' | 'fail'): Promise<boolean> {
    const sql = {
      pass: `UPDATE sessions SET status = 'healthy', recent_outcomes = '', failure_rate = 0,
               quarantined_at = NULL, cooldown_until = NULL, last_checked_at = now()
             WHERE id = $1 AND status = 'quarantined' RETURNING id`,
      unauthorized: `UPDATE sessions SET status = 'expired', last_checked_at = now()
                     WHERE id = $1 AND status = 'quarantined' RETURNING id`,
      fail: `UPDATE sessions SET last_checked_at = now()
             WHERE id = $1 AND status = 'quarantined' RETURNING id`,
    }[verdict];
    const rows = await this.sql(sql, [id], 'sessions.probe_result');
    return rows.length > 0;
  }

  /** Rows whose credential is still plain text (inserted by hand with SQL). */
  plaintextRows(): Promise<Pick<SessionRow, 'id' | 'cookie_text' | 'cookie_hash'>[]> {
    return this.sql(
      `SELECT id, cookie_text, cookie_hash FROM sessions WHERE cookie_text NOT LIKE 'enc:v1:%'`,
      [],
      'sessions.plaintext',
    );
  }

  allCredentials(): Promise<Pick<SessionRow, 'id' | 'cookie_text' | 'cookie_hash'>[]> {
    return this.sql(
      `SELECT id, cookie_text, cookie_hash FROM sessions ORDER BY created_at, id`,
      [],
      'sessions.credentials',
    );
  }

  /**
   * Swaps the stored credential only if nobody changed it meanwhile (another replica may be
   * encrypting the same hand-inserted row at the same moment).
   */
  async replaceCredential(
    id: string,
    expected: string,
    cookieText: string,
    cookieHash: string,
  ): Promise<boolean> {
    const rows = await this.sql(
      `UPDATE sessions SET cookie_text = $3, cookie_hash = $4
       WHERE id = $1 AND cookie_text = $2 RETURNING id`,
      [id, expected, cookieText, cookieHash],
      'sessions.replace_credential',
    );
    return rows.length > 0;
  }

  /** Honours expires_at: due sessions leave rotation for good. Returns how many. */
  async expireDue(): Promise<number> {
    const rows = await this.sql(
      `UPDATE sessions SET status = 'expired'
       WHERE expires_at <= now() AND status IN ('healthy', 'quarantined') RETURNING id`,
      [],
      'sessions.expire_due',
    );
    return rows.length;
  }

  quarantined(): Promise<SessionRow[]> {
    return this.sql<SessionRow>(
      `SELECT * FROM sessions WHERE status = 'quarantined' ORDER BY last_checked_at NULLS FIRST`,
      [],
      'sessions.quarantined',
    );
  }

  async countsByStatus(): Promise<{ provider: string; status: SessionStatus; count: number }[]> {
    const rows = await this.sql<{ provider: string; status: SessionStatus; count: string }>(
      `SELECT provider,
              CASE WHEN status IN ('healthy', 'quarantined') AND expires_at <= now()
                   THEN 'expired' ELSE status END AS status,
              count(*) AS count
       FROM sessions GROUP BY 1, 2`,
      [],
      'sessions.counts',
    );
    return rows.map((r) => ({ ...r, count: Number(r.count) }));
  }
}
