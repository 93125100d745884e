import { Injectable } from '@nestjs/common';
import { Queryable } from '@app/database';
import { AuditEntry, AuditRepository } from './audit.repository';
import { PageCursor, toPage } from './pagination';

export interface AuditView {
  id: string;
  actor: string;
  action: string;
  target: string | null;
  details: Record<string, unknown>;
  created_at: string;
}

/**
 * audit_log: one row per admin change. `actor` is the admin's username (or `cli`, `system`);
 * `details` must never carry a secret (keys, passwords, tokens, cookies).
 */
@Injectable()
export class AuditService {
  constructor(private readonly repository: AuditRepository) {}

  /** Pass `tx` to commit the audit row together with the change it describes. */
  async record(
    actor: string,
    action: string,
    target: string | null,
    details: Record<string, unknown> = {},
    tx?: Queryable,
  ): Promise<void> {
    await this.repository.insert({ actor, action, target, details }, tx);
  }

  async list(
    filter: { actor?: string; action?: string },
    limit: number,
    cursor?: PageCursor,
  ): Promise<{ data: AuditView[]; next_cursor: string | null }> {
    const rows = await this.repository.list(filter, limit + 1, cursor);
    return toPage(rows, limit, toAuditView);
  }
}

function toAuditView(entry: AuditEntry): AuditView {
  return {
    id: entry.id,
    actor: entry.actor,
    action: entry.action,
    target: entry.target,
    details: entry.details,
    created_at: entry.createdAt.toISOString(),
  };
}
