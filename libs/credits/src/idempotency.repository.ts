import { Injectable } from '@nestjs/common';
import { DatabaseService } from '@app/database';

export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  /** A JSON body, or the raw text of a streamed (SSE) response. */
  body: unknown;
}

export interface IdempotencyRecord {
  requestHash: string;
  status: 'in_flight' | 'completed';
  response: StoredResponse | null;
}

@Injectable()
export class IdempotencyRepository {
  constructor(private readonly db: DatabaseService) {}

  /**
   * Claims the key for this request in one statement. A key is claimable when it is new, when
   * its record expired, or when an earlier attempt with the same request died holding it
   * (its lock ran out). Returns false when someone else holds or completed it.
   */
  async claim(
    userId: string,
    key: string,
    requestHash: string,
    lockSeconds: number,
    ttlSeconds: number,
  ): Promise<boolean> {
    const rows = await this.db.query(
      `INSERT INTO idempotency_keys (user_id, key, request_hash, status, locked_until, expires_at)
       VALUES ($1, $2, $3, 'in_flight', now() + make_interval(secs => $4), now() + make_interval(secs => $5))
       ON CONFLICT (user_id, key) DO UPDATE SET
         request_hash = EXCLUDED.request_hash,
         status = 'in_flight',
         response = NULL,
         locked_until = EXCLUDED.locked_until,
         expires_at = EXCLUDED.expires_at,
         created_at = now(),
         completed_at = NULL
       WHERE idempotency_keys.expires_at < now()
          OR (idempotency_keys.status = 'in_flight'
              AND idempotency_keys.locked_until < now()
              AND idempotency_keys.request_hash = EXCLUDED.request_hash)
       RETURNING 1`,
      [userId, key, requestHash, lockSeconds, ttlSeconds],
      'idempotency_claim',
    );
    return rows.length > 0;
  }

  async find(userId: string, key: string): Promise<IdempotencyRecord | undefined> {
    const rows = await this.db.query<{
      request_hash: string;
      status: 'in_flight' | 'completed';
      response: StoredResponse | null;
    }>(
      `SELECT request_hash, status, response FROM idempotency_keys
       WHERE user_id = $1 AND key = $2 AND expires_at >= now()`,
      [userId, key],
      'idempotency_find',
    );
    const row = rows[0];
    return row
      ? { requestHash: row.request_hash, status: row.status, response: row.response }
      : undefined;
  }

  async complete(userId: string, key: string, response: StoredResponse): Promise<boolean> {
    const result = await this.db.execute(
      `UPDATE idempotency_keys
       SET status = 'completed', response = $3::jsonb, completed_at = now(), locked_until = now()
       WHERE user_id = $1 AND key = $2 AND status = 'in_flight'`,
      [userId, key, JSON.stringify(response)],
      'idempotency_complete',
    );
    return result.rowCount > 0;
  }

  async release(userId: string, key: string): Promise<void> {
    await this.db.query(
      `DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status = 'in_flight'`,
      [userId, key],
      'idempotency_release',
    );
  }

  async deleteExpired(): Promise<number> {
    return (await this.db.execute(`DELETE FROM idempotency_keys WHERE expires_at < now()`, []))
      .rowCount;
  }
}
