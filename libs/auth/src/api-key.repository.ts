import { Injectable } from '@nestjs/common';
import { DatabaseService, Queryable } from '@app/database';
import { runSql } from './sql';
import { ApiKeyRecord } from './api-key.types';
import { afterCursorSql, PageCursor } from './pagination';

const COLUMNS = `id, user_id, name, prefix, key_hash, scopes, rate_limit_per_minute, rate_limit_per_hour,
  cache_scope, rotated_from, expires_at, revoked_at, last_used_at, created_at`;

interface ApiKeyRow {
  id: string;
  user_id: string;
  name: string;
  prefix: string;
  key_hash: string;
  scopes: string[];
  rate_limit_per_minute: number | null;
  rate_limit_per_hour: number | null;
  cache_scope: 'user' | 'shared';
  rotated_from: string | null;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  created_at: Date;
}

function toRecord(row: ApiKeyRow): ApiKeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    name: row.name,
    prefix: row.prefix,
    keyHash: row.key_hash,
    scopes: row.scopes,
    rateLimitPerMinute: row.rate_limit_per_minute,
    rateLimitPerHour: row.rate_limit_per_hour,
    cacheScope: row.cache_scope,
    rotatedFrom: row.rotated_from,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    createdAt: row.created_at,
  };
}

export interface NewApiKey {
  userId: string;
  name: string;
  prefix: string;
  keyHash: string;
  scopes: string[];
  rateLimitPerMinute: number | null;
  rateLimitPerHour: number | null;
  cacheScope: 'user' | 'shared';
  expiresAt: Date | null;
  rotatedFrom?: string | null;
}

export interface ApiKeyChanges {
  name?: string;
  scopes?: string[];
  rateLimitPerMinute?: number | null;
  rateLimitPerHour?: number | null;
  cacheScope?: 'user' | 'shared';
  expiresAt?: Date | null;
}

/** SQL for api_keys. Only this file knows the column names. */
@Injectable()
export class ApiKeyRepository {
  constructor(private readonly db: DatabaseService) {}

  async findByHash(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const rows = await runSql<ApiKeyRow>(
      this.db,
      undefined,
      `SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1`,
      [keyHash],
      'api_key_lookup',
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async findById(id: string, tx?: Queryable): Promise<ApiKeyRecord | undefined> {
    const rows = await runSql<ApiKeyRow>(
      this.db,
      tx,
      `SELECT ${COLUMNS} FROM api_keys WHERE id = $1`,
      [id],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** The key, its row locked until `tx` ends: concurrent rotations of one key take turns. */
  async lockById(id: string, tx: Queryable): Promise<ApiKeyRecord | undefined> {
    const rows = await runSql<ApiKeyRow>(
      this.db,
      tx,
      `SELECT ${COLUMNS} FROM api_keys WHERE id = $1 FOR UPDATE`,
      [id],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async insert(key: NewApiKey, tx?: Queryable): Promise<ApiKeyRecord> {
    const rows = await runSql<ApiKeyRow>(
      this.db,
      tx,
      `INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, rate_limit_per_minute,
         rate_limit_per_hour, cache_scope, expires_at, rotated_from)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       RETURNING ${COLUMNS}`,
      [...keyValues(key), key.rotatedFrom ?? null],
    );
    return toRecord(rows[0]);
  }

  /** Inserts unless a key with this hash exists; returns the row either way. */
  async upsertByHash(key: NewApiKey, tx?: Queryable): Promise<ApiKeyRecord> {
    const rows = await runSql<ApiKeyRow>(
      this.db,
      tx,
      `INSERT INTO api_keys (user_id, name, prefix, key_hash, scopes, rate_limit_per_minute,
         rate_limit_per_hour, cache_scope, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (key_hash) DO UPDATE SET key_hash = EXCLUDED.key_hash
       RETURNING ${COLUMNS}`,
      keyValues(key),
    );
    return toRecord(rows[0]);
  }

  async update(
    id: string,
    changes: ApiKeyChanges,
    tx?: Queryable,
  ): Promise<ApiKeyRecord | undefined> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    const set = (column: string, value: unknown) => {
      params.push(value);
      sets.push(`${column} = $${params.length}`);
    };
    if (changes.name !== undefined) set('name', changes.name);
    if (changes.scopes !== undefined) set('scopes', changes.scopes);
    if (changes.rateLimitPerMinute !== undefined)
      set('rate_limit_per_minute', changes.rateLimitPerMinute);
    if (changes.rateLimitPerHour !== undefined)
      set('rate_limit_per_hour', changes.rateLimitPerHour);
    if (changes.cacheScope !== undefined) set('cache_scope', changes.cacheScope);
    if (changes.expiresAt !== undefined) set('expires_at', changes.expiresAt);
    if (sets.length === 0) return this.findById(id, tx);
    const rows = await runSql<ApiKeyRow>(
      this.db,
      tx,
      `UPDATE api_keys SET ${sets.join(', ')} WHERE id = $1 RETURNING ${COLUMNS}`,
      params,
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /**
   * Schedules revocation at `at` (now for DELETE, now + grace for a rotation). An earlier
   * revocation is never pushed later.
   */
  async revokeAt(id: string, at: Date, tx?: Queryable): Promise<ApiKeyRecord | undefined> {
    const rows = await runSql<ApiKeyRow>(
      this.db,
      tx,
      `UPDATE api_keys SET revoked_at = LEAST(COALESCE(revoked_at, $2), $2)
       WHERE id = $1 RETURNING ${COLUMNS}`,
      [id, at],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Revokes the user's keys with this name whose hash is not in `keepHashes`. */
  async revokeOthersByName(
    userId: string,
    name: string,
    keepHashes: string[],
  ): Promise<ApiKeyRecord[]> {
    const rows = await runSql<ApiKeyRow>(
      this.db,
      undefined,
      `UPDATE api_keys SET revoked_at = now()
       WHERE user_id = $1 AND name = $2 AND revoked_at IS NULL AND NOT (key_hash = ANY($3::text[]))
       RETURNING ${COLUMNS}`,
      [userId, name, keepHashes],
    );
    return rows.map(toRecord);
  }

  async list(
    filter: { userId?: string },
    limit: number,
    cursor?: PageCursor,
  ): Promise<ApiKeyRecord[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (filter.userId) {
      params.push(filter.userId);
      where.push(`user_id = $${params.length}`);
    }
    if (cursor) {
      params.push(cursor);
      where.push(afterCursorSql('api_keys', `$${params.length}`));
    }
    params.push(limit);
    const rows = await runSql<ApiKeyRow>(
      this.db,
      undefined,
      `SELECT ${COLUMNS} FROM api_keys ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toRecord);
  }

  /** One statement for a whole batch of last_used_at updates. */
  async touchLastUsed(usage: Map<string, Date>): Promise<void> {
    if (usage.size === 0) return;
    const ids = [...usage.keys()];
    const times = ids.map((id) => usage.get(id)!.toISOString());
    await runSql(
      this.db,
      undefined,
      `UPDATE api_keys AS k SET last_used_at = GREATEST(k.last_used_at, u.used_at)
       FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, used_at)
       WHERE k.id = u.id`,
      [ids, times],
      'api_key_last_used',
    );
  }
}

/** $1..$9 of both INSERTs, in their column order. */
function keyValues(key: NewApiKey): unknown[] {
  return [
    key.userId,
    key.name,
    key.prefix,
    key.keyHash,
    key.scopes,
    key.rateLimitPerMinute,
    key.rateLimitPerHour,
    key.cacheScope,
    key.expiresAt,
  ];
}
