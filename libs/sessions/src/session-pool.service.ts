import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { ProviderRegistry } from '@app/generation';
import { LOGGER } from '@app/observability';
import { isEncrypted, SessionDecryptError } from './session-cipher';
import { SessionCredentials } from './session-credentials';
import {
  applyOutcome,
  outcomeForStatus,
  SESSION_STATUSES,
  SessionOutcome,
  SessionStatus,
} from './session-health.policy';
import { noHealthySessions } from './sessions.errors';
import { activeSessions, sessionRotations } from './sessions.metrics';
import { SessionsRepository } from './sessions.repository';

/** A credential lent to one upstream call; give the outcome back with report(lease.id, …). */
export interface SessionLease {
  id: string;
  provider: string;
  credential: string;
}

export type SessionCounts = Record<string, Record<SessionStatus, number>>;

const SUCCESS_FLUSH_MS = 1000;
const GAUGE_REFRESH_MS = 15000;
/** A row no configured key opens is skipped; give up after this many in one acquire. */
const MAX_UNREADABLE_SKIPS = 3;

/** How a provider with `session_auth` sends the credential upstream. */
export function sessionAuthHeaders(
  mode: 'bearer' | 'cookie',
  credential: string,
): Record<string, string> {
  return mode === 'cookie' ? { cookie: credential } : { authorization: `Bearer ${credential}` };
}

/**
 * The generation pipeline's view of the pool: take the least recently used healthy session of a
 * provider, and report how the upstream call went. Successes are batched off the request path;
 * anything that can change a session's status is applied at once.
 */
@Injectable()
export class SessionPoolService
  implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown
{
  private pendingSuccesses = new Map<string, number>();
  private flushTimer?: NodeJS.Timeout;
  private gaugeTimer?: NodeJS.Timeout;
  private gaugeRefreshQueued = false;
  /** Providers seen since boot, so their gauges read 0 rather than vanish when emptied. */
  private readonly knownProviders = new Set<string>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly repository: SessionsRepository,
    private readonly credentials: SessionCredentials,
    private readonly providers: ProviderRegistry,
  ) {}

  /** Enabled, configured providers that take their credential from this pool. */
  sessionProviders(): string[] {
    return this.providers
      .list()
      .filter((p) => p.configured && p.enabled && p.sessionAuth !== 'none')
      .map((p) => p.name);
  }

  onApplicationBootstrap(): void {
    if (!this.config.backgroundTasks) return;
    this.flushTimer = setInterval(() => void this.flush(), SUCCESS_FLUSH_MS);
    this.flushTimer.unref();
    this.gaugeTimer = setInterval(() => void this.refreshGauges(), GAUGE_REFRESH_MS);
    this.gaugeTimer.unref();
    void this.refreshGauges();
  }

  /** The least recently used healthy session of `provider`, or null when there is none. */
  async tryAcquire(provider: string): Promise<SessionLease | null> {
    for (let skips = 0; skips < MAX_UNREADABLE_SKIPS; skips++) {
      const row = await this.repository.acquire(provider);
      if (!row) return null;
      let credential: string;
      try {
        credential = this.credentials.reveal(row.cookie_text);
      } catch (err) {
        if (!(err instanceof SessionDecryptError)) throw err;
        this.logger.error(
          { session_id: row.id, provider },
          'session credential cannot be decrypted with SESSION_ENCRYPTION_KEY (or _PREVIOUS); skipped',
        );
        continue;
      }
      if (!isEncrypted(row.cookie_text)) void this.credentials.encryptInPlace(row);
      sessionRotations.inc({ provider });
      return { id: row.id, provider, credential };
    }
    return null;
  }

  /** Like tryAcquire, but 503 no_healthy_sessions when the provider has none. */
  async acquire(provider: string): Promise<SessionLease> {
    const lease = await this.tryAcquire(provider);
    if (!lease) throw noHealthySessions(provider);
    return lease;
  }

  /**
   * Records how an upstream call with this session went: an outcome, or the upstream HTTP
   * status (undefined for a transport error or timeout). Never throws: the caller's response
   * must not depend on bookkeeping.
   */
  async report(id: string, outcome: SessionOutcome | number | undefined): Promise<void> {
    const kind =
      typeof outcome === 'number' || outcome === undefined ? outcomeForStatus(outcome) : outcome;
    if (kind === 'success') {
      this.pendingSuccesses.set(id, (this.pendingSuccesses.get(id) ?? 0) + 1);
      if (!this.flushTimer) await this.flush();
      return;
    }
    if (kind === 'neutral') return;
    try {
      await this.applyNow(id, kind);
    } catch (err) {
      this.logger.warn(
        { session_id: id, outcome: kind, err: (err as Error).message },
        'could not record a session outcome',
      );
    }
  }

  private async applyNow(id: string, outcome: SessionOutcome): Promise<void> {
    const policy = {
      window: this.config.sessions.failureWindow,
      minSample: this.config.sessions.failureMinSample,
      threshold: this.config.sessions.failureRateThreshold,
    };
    const event = await this.repository.withLockedRow(id, async (row, tx) => {
      if (!row) return null;
      const change = applyOutcome(
        { status: row.status, recentOutcomes: row.recent_outcomes },
        outcome,
        policy,
      );
      await this.repository.saveHealth(tx, id, {
        ...change,
        quarantinedNow: change.transition === 'quarantined',
        cooldownSeconds: change.cooldown ? this.config.sessions.cooldownSeconds : null,
      });
      return { provider: row.provider, change };
    });
    if (!event) return;
    const { provider, change } = event;
    if (change.transition) {
      this.logger.warn(
        {
          session_id: id,
          provider,
          failure_rate: Math.round(change.failureRate * 1000) / 1000,
          outcome,
        },
        change.transition === 'expired'
          ? 'session expired: upstream refused its credential'
          : 'session quarantined: failure rate over threshold',
      );
      this.queueGaugeRefresh();
    } else if (change.cooldown) {
      this.logger.info(
        { session_id: id, provider, cooldown_seconds: this.config.sessions.cooldownSeconds },
        'session cooling down after upstream 429',
      );
    }
  }

  /** Writes batched successes. Called by a timer, at shutdown, and by tests. */
  async flush(): Promise<void> {
    if (this.pendingSuccesses.size === 0) return;
    const batch = this.pendingSuccesses;
    this.pendingSuccesses = new Map();
    try {
      await this.repository.applySuccesses(
        [...batch.keys()],
        [...batch.values()],
        this.config.sessions.failureWindow,
      );
    } catch (err) {
      // Success counts are statistics; losing one batch during an outage is acceptable.
      this.logger.warn(
        { sessions: batch.size, err: (err as Error).message },
        'could not record session successes',
      );
    }
  }

  /** Sessions per provider and status (expires_at honoured), for stats and health. */
  async counts(): Promise<SessionCounts> {
    const counts: SessionCounts = {};
    const zero = () =>
      Object.fromEntries(SESSION_STATUSES.map((s) => [s, 0])) as Record<SessionStatus, number>;
    for (const provider of this.sessionProviders()) this.knownProviders.add(provider);
    for (const provider of this.knownProviders) counts[provider] = zero();
    for (const row of await this.repository.countsByStatus()) {
      this.knownProviders.add(row.provider);
      counts[row.provider] ??= zero();
      counts[row.provider][row.status] += row.count;
    }
    return counts;
  }

  async refreshGauges(): Promise<SessionCounts | undefined> {
    try {
      const counts = await this.counts();
      for (const [provider, byStatus] of Object.entries(counts))
        for (const status of SESSION_STATUSES)
          activeSessions.set({ provider, status }, byStatus[status]);
      return counts;
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'session gauges not refreshed');
      return undefined;
    }
  }

  /** Coalesces bursts of status changes into one count query. */
  queueGaugeRefresh(): void {
    if (this.gaugeRefreshQueued) return;
    this.gaugeRefreshQueued = true;
    setTimeout(() => {
      this.gaugeRefreshQueued = false;
      void this.refreshGauges();
    }, 100).unref();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
    await this.flush();
  }

  onApplicationShutdown(): void {
    if (this.gaugeTimer) clearInterval(this.gaugeTimer);
  }
}
