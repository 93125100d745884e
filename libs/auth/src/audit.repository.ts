import { Injectable } from '@nestjs/common';
import { DatabaseService, Queryable } from '@app/database';
import { runSql } from './sql';
import { afterCursorSql, PageCursor } from './pagination';

export interface AuditEntry {
  id: string;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  createdAt: Date;
}

interface AuditRow {
  id: string;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  created_at: Date;
}

const toEntry = (row: AuditRow): AuditEntry => ({
  id: row.id,
  actor: row.actor,
  action: row.action,
  target: row.target,
  details: row.details,
  createdAt: row.created_at,
});

@Injectable()
export class AuditRepository {
  constructor(private readonly db: DatabaseService) {}

  async insert(entry: Omit<AuditEntry, 'id' | 'createdAt'>, tx?: Queryable): Promise<void> {
    await runSql(
      this.db,
      tx,
      `INSERT INTO audit_log (actor, action, target, details) VALUES ($1, $2, $3, $4::jsonb)`,
      [entry.actor, entry.action, entry.target, JSON.stringify(entry.details)],
    );
  }

  async list(
    filter: { actor?: string; action?: string },
    limit: number,
    cursor?: PageCursor,
  ): Promise<AuditEntry[]> {
    const params: unknown[] = [];
    const where: string[] = [];
    if (filter.actor) {
      params.push(filter.actor);
      where.push(`actor = $${params.length}`);
    }
    if (filter.action) {
      params.push(filter.action);
      where.push(`action = $${params.length}`);
    }
    if (cursor) {
      params.push(cursor);
      where.push(afterCursorSql('audit_log', `$${params.length}`));
    }
    params.push(limit);
    const rows = await runSql<AuditRow>(
      this.db,
      undefined,
      `SELECT id, actor, action, target, details, created_at FROM audit_log
       ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toEntry);
  }
}
