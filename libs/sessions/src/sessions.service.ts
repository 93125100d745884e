import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { AuditService } from '@app/auth';
import { LOGGER } from '@app/observability';
import { maskCredential } from './session-cipher';
import { SessionCredentials } from './session-credentials';
import { HealthCheckSummary, SessionHealthCheckService } from './session-health-check.service';
import { SessionPoolService } from './session-pool.service';
import { duplicateSession, sessionNotFound } from './sessions.errors';
import { SessionRow, SessionsRepository } from './sessions.repository';

/** What the admin API shows of a session: everything but the credential. */
export interface SessionView {
  id: string;
  provider: string;
  status: string;
  failure_rate: number;
  success_count: number;
  failure_count: number;
  recent_outcomes: string;
  last_used_at: string | null;
  last_checked_at: string | null;
  quarantined_at: string | null;
  cooldown_until: string | null;
  expires_at: string | null;
  metadata: Record<string, unknown>;
  credential_preview: string;
  created_at: string;
}

export interface AddSessionInput {
  provider: string;
  credential: string;
  metadata?: Record<string, unknown>;
  expiresAt?: Date | null;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

/** Operator actions on the pool (admin API and CLI). */
@Injectable()
export class SessionsService {
  constructor(
    private readonly repository: SessionsRepository,
    private readonly credentials: SessionCredentials,
    private readonly pool: SessionPoolService,
    private readonly healthCheck: SessionHealthCheckService,
    private readonly audit: AuditService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async list(): Promise<SessionView[]> {
    // A hand-inserted row or a passed expires_at should look right the moment someone looks.
    await this.credentials.encryptAllPlaintext();
    await this.repository.expireDue();
    return (await this.repository.list()).map((row) => this.view(row));
  }

  async get(id: string): Promise<SessionView> {
    const row = await this.repository.findById(id);
    if (!row) throw sessionNotFound();
    return this.view(row);
  }

  async add(input: AddSessionInput, actor: string): Promise<SessionView> {
    const sealed = this.credentials.seal(input.credential);
    const row = await this.repository.insert({
      provider: input.provider,
      cookieText: sealed.cookieText,
      cookieHash: sealed.cookieHash,
      metadata: input.metadata ?? {},
      expiresAt: input.expiresAt ?? null,
    });
    if (!row) throw duplicateSession();
    this.logger.info({ session_id: row.id, provider: row.provider }, 'session added');
    await this.audit.record(actor, 'session.create', row.id, {
      provider: row.provider,
      metadata: row.metadata,
      expires_at: iso(row.expires_at),
    });
    this.pool.queueGaugeRefresh();
    return this.view(row);
  }

  async activate(id: string, actor: string): Promise<SessionView> {
    const row = await this.repository.activate(id);
    if (!row) throw sessionNotFound();
    this.logger.info({ session_id: id, provider: row.provider }, 'session activated');
    await this.audit.record(actor, 'session.activate', id, { provider: row.provider });
    this.pool.queueGaugeRefresh();
    return this.view(row);
  }

  async quarantine(id: string, actor: string): Promise<SessionView> {
    const row = await this.repository.quarantine(id);
    if (!row) throw sessionNotFound();
    this.logger.info({ session_id: id, provider: row.provider }, 'session quarantined by admin');
    await this.audit.record(actor, 'session.quarantine', id, { provider: row.provider });
    this.pool.queueGaugeRefresh();
    return this.view(row);
  }

  async remove(id: string, actor: string): Promise<{ id: string; deleted: true }> {
    const row = await this.repository.findById(id);
    if (!row || !(await this.repository.delete(id))) throw sessionNotFound();
    this.logger.info({ session_id: id, provider: row.provider }, 'session deleted');
    await this.audit.record(actor, 'session.delete', id, { provider: row.provider });
    this.pool.queueGaugeRefresh();
    return { id, deleted: true };
  }

  /** Runs a probe round now on this replica, whichever replica leads the loop. */
  async healthCheckNow(actor: string): Promise<HealthCheckSummary> {
    const summary = await this.healthCheck.runRound('manual');
    await this.audit.record(actor, 'session.health_check', null, { ...summary });
    return summary;
  }

  async reencryptAll(actor: string) {
    const result = await this.credentials.reencryptAll();
    await this.audit.record(actor, 'session.reencrypt', null, {
      ...result,
      failed: result.failed.length,
    });
    return result;
  }

  private view(row: SessionRow): SessionView {
    let preview: string;
    try {
      preview = maskCredential(this.credentials.reveal(row.cookie_text));
    } catch {
      preview = '(unreadable with the configured key)';
    }
    return {
      id: row.id,
      provider: row.provider,
      status: row.status,
      failure_rate: Number(row.failure_rate),
      success_count: row.success_count,
      failure_count: row.failure_count,
      recent_outcomes: row.recent_outcomes,
      last_used_at: iso(row.last_used_at),
      last_checked_at: iso(row.last_checked_at),
      quarantined_at: iso(row.quarantined_at),
      cooldown_until: iso(row.cooldown_until),
      expires_at: iso(row.expires_at),
      metadata: row.metadata,
      credential_preview: preview,
      created_at: iso(row.created_at) as string,
    };
  }
}
