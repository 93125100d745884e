import { Injectable } from '@nestjs/common';
import { DatabaseService, Queryable } from '@app/database';
import { runSql } from './sql';
import { afterCursorSql, PageCursor } from './pagination';
import { UserRecord, UserRole } from './user.types';

const COLUMNS = `u.id, u.username, u.email, u.role, u.password_hash, u.subscription_tier, u.created_at`;

interface UserRow {
  id: string;
  username: string;
  email: string | null;
  role: UserRole;
  password_hash: string | null;
  subscription_tier: string;
  created_at: Date;
  balance?: string | null;
  base_quota?: string | null;
}

export interface UserWithCredits extends UserRecord {
  balance: number;
  baseQuota: number;
}

function toRecord(row: UserRow): UserRecord {
  return {
    id: row.id,
    username: row.username,
    email: row.email,
    role: row.role,
    passwordHash: row.password_hash,
    subscriptionTier: row.subscription_tier,
    createdAt: row.created_at,
  };
}

function withCredits(row: UserRow): UserWithCredits {
  return {
    ...toRecord(row),
    balance: Number(row.balance ?? 0),
    baseQuota: Number(row.base_quota ?? 0),
  };
}

export interface NewUser {
  username: string;
  email: string | null;
  role: UserRole;
  passwordHash: string | null;
  subscriptionTier?: string;
}

/** SQL for users (and the credit columns shown next to them). */
@Injectable()
export class UsersRepository {
  constructor(private readonly db: DatabaseService) {}

  async findByUsername(username: string, tx?: Queryable): Promise<UserRecord | undefined> {
    const rows = await runSql<UserRow>(
      this.db,
      tx,
      `SELECT ${COLUMNS} FROM users u WHERE u.username = $1`,
      [username],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  async findById(id: string, tx?: Queryable): Promise<UserWithCredits | undefined> {
    const rows = await runSql<UserRow>(
      this.db,
      tx,
      `SELECT ${COLUMNS}, c.balance, c.base_quota FROM users u
       LEFT JOIN user_credits c ON c.user_id = u.id WHERE u.id = $1`,
      [id],
    );
    return rows[0] ? withCredits(rows[0]) : undefined;
  }

  /** Inserts, or returns undefined when the username is taken. */
  async insert(user: NewUser, tx?: Queryable): Promise<UserRecord | undefined> {
    const rows = await runSql<UserRow>(
      this.db,
      tx,
      `INSERT INTO users AS u (username, email, role, password_hash, subscription_tier)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (username) DO NOTHING
       RETURNING ${COLUMNS}`,
      [user.username, user.email, user.role, user.passwordHash, user.subscriptionTier ?? 'free'],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  }

  /** Creates the user, or returns the existing one with that name (concurrent boots race here). */
  async ensure(user: NewUser, tx?: Queryable): Promise<UserRecord> {
    const inserted = await this.insert(user, tx);
    if (inserted) return inserted;
    const existing = await this.findByUsername(user.username, tx);
    if (!existing) throw new Error(`user ${user.username} vanished while being ensured`);
    return existing;
  }

  /** Creates or resets: the user gets this role and password. Returns whether it was new. */
  async upsertWithPassword(
    username: string,
    role: UserRole,
    passwordHash: string,
    email: string | null,
  ): Promise<{ user: UserRecord; created: boolean }> {
    const rows = await runSql<UserRow & { created: boolean }>(
      this.db,
      undefined,
      `INSERT INTO users AS u (username, email, role, password_hash)
       VALUES ($1, $2, $3, $4)
       ON CONFLICT (username) DO UPDATE SET role = EXCLUDED.role, password_hash = EXCLUDED.password_hash
       RETURNING ${COLUMNS}, (xmax = 0) AS created`,
      [username, email, role, passwordHash],
    );
    return { user: toRecord(rows[0]), created: rows[0].created };
  }

  async count(): Promise<number> {
    const rows = await runSql<{ n: string }>(
      this.db,
      undefined,
      `SELECT count(*) AS n FROM users`,
      [],
    );
    return Number(rows[0].n);
  }

  async list(limit: number, cursor?: PageCursor): Promise<UserWithCredits[]> {
    const params: unknown[] = [];
    let where = '';
    if (cursor) {
      params.push(cursor);
      where = `WHERE ${afterCursorSql('users', '$1', 'u')}`;
    }
    params.push(limit);
    const rows = await runSql<UserRow>(
      this.db,
      undefined,
      `SELECT ${COLUMNS}, c.balance, c.base_quota FROM users u
       LEFT JOIN user_credits c ON c.user_id = u.id
       ${where}
       ORDER BY u.created_at DESC, u.id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(withCredits);
  }
}
