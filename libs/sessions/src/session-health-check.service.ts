import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Client } from 'pg';
import type { Logger } from 'pino';
import { request } from 'undici';
import { APP_CONFIG, AppConfig } from '@app/config';
import { DatabaseService } from '@app/database';
import { ProviderConfig, ProviderRegistry } from '@app/generation';
import { HealthRegistry } from '@app/health';
import { LOGGER } from '@app/observability';
import { SessionCredentials } from './session-credentials';
import { SessionPoolService, sessionAuthHeaders } from './session-pool.service';
import { SessionRow, SessionsRepository } from './sessions.repository';

export interface HealthCheckSummary {
  trigger: 'loop' | 'manual';
  checked: number;
  reactivated: number;
  still_quarantined: number;
  expired: number;
  encrypted: number;
  skipped: number;
  duration_ms: number;
  finished_at: string;
}

type Verdict = 'pass' | 'unauthorized' | 'fail';

/** Session-level advisory lock held by the one replica that runs the loop. */
const LEADER_LOCK_KEY = 727405001;
/** application_name of the connection that holds it (the runbook's pg_stat_activity query). */
const LOCK_APPLICATION_NAME = 'switchyard-session-health';
/**
 * The leader touches its lock connection every interval; one idle this many intervals (and at
 * least SILENT_LEADER_MIN_MS) belongs to a leader that stopped answering.
 */
const SILENT_LEADER_INTERVALS = 3;
const SILENT_LEADER_MIN_MS = 10_000;
const PROBE_CONCURRENCY = 4;

/**
 * The session health-check loop. Every replica schedules it, but only the replica holding a
 * Postgres advisory lock runs rounds: the lock lives on a dedicated connection, so it is
 * released by the server the moment that replica's process exits, and another replica takes
 * over at its next tick.
 *
 * A leader whose host died or was cut off (or whose process froze) closes nothing: Postgres
 * keeps its connection, and the lock, until TCP keepalive gives up (about 2 h by default). So
 * the leader touches its lock connection every interval (heartbeat), and a follower that finds
 * the lock held by a connection idle for SILENT_LEADER_INTERVALS intervals ends that connection
 * (pg_terminate_backend) and takes the lock at its next tick.
 */
@Injectable()
export class SessionHealthCheckService implements OnApplicationBootstrap, OnApplicationShutdown {
  private lockClient?: Client;
  private leader = false;
  private timer?: NodeJS.Timeout;
  private heartbeatTimer?: NodeJS.Timeout;
  private stopped = false;
  private inFlight?: Promise<HealthCheckSummary>;
  private lastRound?: HealthCheckSummary;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly db: DatabaseService,
    private readonly repository: SessionsRepository,
    private readonly credentials: SessionCredentials,
    private readonly pool: SessionPoolService,
    private readonly registry: HealthRegistry,
    private readonly providers: ProviderRegistry,
  ) {}

  get isLeader(): boolean {
    return this.leader;
  }

  onApplicationBootstrap(): void {
    this.registry.register('session_pool', () => this.component());
    if (!this.config.backgroundTasks) return;
    void this.start();
  }

  private async start(): Promise<void> {
    // Hand-inserted (seed 000) rows must not stay readable in the table after startup.
    await this.credentials
      .encryptAllPlaintext()
      .catch((err) =>
        this.logger.warn({ err: (err as Error).message }, 'startup session encryption failed'),
      );
    await this.tryLead();
    this.schedule();
  }

  private get intervalMs(): number {
    return this.config.sessions.healthCheckIntervalSeconds * 1000;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick().finally(() => this.schedule()), this.intervalMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    if (this.leader && !(await this.stillLeader())) {
      this.logger.warn('session health-check leadership lost');
      this.leader = false;
    }
    if (!this.leader && !(await this.tryLead())) {
      await this.endSilentLeader();
      return;
    }
    await this.runRound('loop').catch((err) =>
      this.logger.error({ err: (err as Error).message }, 'session health check failed'),
    );
  }

  private async tryLead(): Promise<boolean> {
    if (this.stopped) return false;
    try {
      if (!this.lockClient) {
        const client = new Client({
          connectionString: this.databaseUrl(),
          connectionTimeoutMillis: this.config.database.connectTimeoutMs,
          application_name: LOCK_APPLICATION_NAME,
        });
        client.on('error', () => this.dropLock());
        client.on('end', () => this.dropLock());
        await client.connect();
        this.lockClient = client;
      }
      const rows = await this.lockClient.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1) AS locked',
        [LEADER_LOCK_KEY],
      );
      this.leader = rows.rows[0]?.locked === true;
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'session health-check lock not taken');
      this.dropLock();
    }
    if (this.leader) {
      this.logger.info(
        { interval_seconds: this.config.sessions.healthCheckIntervalSeconds },
        'Health check loop started',
      );
      this.startHeartbeat();
    } else {
      // Followers keep no idle connection open while they wait.
      this.closeLockClient();
    }
    return this.leader;
  }

  private async stillLeader(): Promise<boolean> {
    try {
      await this.lockClient?.query('SELECT 1');
      return this.lockClient !== undefined;
    } catch {
      this.dropLock();
      return false;
    }
  }

  /** Keeps the lock connection visibly alive, also while a long round runs. */
  private startHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), this.intervalMs);
    this.heartbeatTimer.unref();
  }

  private async heartbeat(): Promise<void> {
    if (this.leader && !(await this.stillLeader()))
      this.logger.warn('session health-check leadership lost');
  }

  /**
   * A follower's check: is the lock held by a connection that has been idle far longer than the
   * leader's heartbeat allows? Then its holder stopped answering: end that connection so the
   * lock is free for the next tick. Never throws.
   */
  private async endSilentLeader(): Promise<void> {
    const silentMs = Math.max(SILENT_LEADER_INTERVALS * this.intervalMs, SILENT_LEADER_MIN_MS);
    try {
      const ended = await this.db.query<{ pid: number; backend_start: Date }>(
        // Materialized first: only the holder found by every condition is ever terminated.
        `WITH silent AS MATERIALIZED (
           SELECT a.pid, a.backend_start FROM pg_stat_activity a
           WHERE a.datname = current_database() AND a.application_name = $1 AND a.state = 'idle'
             AND a.state_change < now() - make_interval(secs => $2::float8 / 1000)
             AND EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted
                           AND l.classid = 0 AND l.objid::bigint = $3 AND l.objsubid = 1))
         SELECT pid, backend_start FROM silent WHERE pg_terminate_backend(pid)`,
        [LOCK_APPLICATION_NAME, silentMs, LEADER_LOCK_KEY],
        'sessions.leader_takeover',
      );
      for (const row of ended)
        this.logger.warn(
          { pid: row.pid, backend_start: row.backend_start, silent_ms: silentMs },
          'session health-check leader stopped answering; its lock connection was ended',
        );
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'silent leader check failed');
    }
  }

  private dropLock(): void {
    this.leader = false;
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    this.closeLockClient();
  }

  private closeLockClient(): void {
    const client = this.lockClient;
    this.lockClient = undefined;
    client?.removeAllListeners('end');
    client?.on('error', () => undefined);
    void client?.end().catch(() => undefined);
  }

  private databaseUrl(): string {
    const url = (this.db.rawDataSource.options as { url?: string }).url;
    if (!url) throw new Error('database URL unknown');
    return url;
  }

  /** One round now (POST /admin/sessions/health-check uses it on any replica). */
  runRound(trigger: 'loop' | 'manual'): Promise<HealthCheckSummary> {
    this.inFlight ??= this.round(trigger).finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async round(trigger: 'loop' | 'manual'): Promise<HealthCheckSummary> {
    const started = performance.now();
    const encrypted = await this.credentials.encryptAllPlaintext();
    let expired = await this.repository.expireDue();
    const quarantined = await this.repository.quarantined();
    let reactivated = 0;
    let stillQuarantined = 0;
    let skipped = 0;
    await forEachLimited(quarantined, PROBE_CONCURRENCY, async (session) => {
      const verdict = await this.check(session, this.providers.byName(session.provider));
      if (verdict === undefined) {
        skipped++;
        return;
      }
      const applied = await this.repository.settleProbe(session.id, verdict);
      if (!applied) return;
      if (verdict === 'pass') reactivated++;
      else if (verdict === 'unauthorized') expired++;
      else stillQuarantined++;
      if (verdict !== 'fail')
        this.logger.info(
          { session_id: session.id, provider: session.provider },
          verdict === 'pass'
            ? 'session reactivated by health check'
            : 'session expired: health check credential refused',
        );
    });
    const summary: HealthCheckSummary = {
      trigger,
      checked: quarantined.length,
      reactivated,
      still_quarantined: stillQuarantined,
      expired,
      encrypted,
      skipped,
      duration_ms: Math.round(performance.now() - started),
      finished_at: new Date().toISOString(),
    };
    this.lastRound = summary;
    this.logger.info(summary, 'Health check complete');
    void this.pool.refreshGauges();
    return summary;
  }

  /** undefined: could not be judged (provider unknown, credential unreadable). */
  private async check(
    session: SessionRow,
    provider: ProviderConfig | undefined,
  ): Promise<Verdict | undefined> {
    if (!provider?.configured) {
      this.logger.warn(
        { session_id: session.id, provider: session.provider },
        'session belongs to no configured provider; not probed',
      );
      return undefined;
    }
    let credential: string;
    try {
      credential = this.credentials.reveal(session.cookie_text);
    } catch {
      return undefined;
    }
    return this.probe(provider, credential);
  }

  /**
   * The cheapest authenticated call: GET {base_url}/models with the credential. The built-in
   * mock provider checks no credential, so its sessions always pass.
   */
  private async probe(provider: ProviderConfig, credential: string): Promise<Verdict> {
    if (provider.kind === 'mock') return 'pass';
    if (!provider.baseUrl) return 'fail';
    const timeout = Math.min(this.config.sessions.probeTimeoutMs, provider.timeoutMs);
    const mode = provider.sessionAuth === 'cookie' ? 'cookie' : 'bearer';
    try {
      const res = await request(`${provider.baseUrl.replace(/\/+$/, '')}/models`, {
        method: 'GET',
        headers: sessionAuthHeaders(mode, credential),
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: AbortSignal.timeout(timeout),
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) return 'pass';
      if (res.statusCode === 401 || res.statusCode === 403) return 'unauthorized';
      return 'fail';
    } catch {
      return 'fail';
    }
  }

  private async component() {
    const counts = await this.pool.counts();
    const starved = this.pool.sessionProviders().filter((p) => (counts[p]?.healthy ?? 0) === 0);
    return {
      name: 'session_pool',
      status: starved.length > 0 ? ('degraded' as const) : ('up' as const),
      details: {
        providers: counts,
        without_healthy_sessions: starved,
        health_check: {
          leader: this.leader,
          interval_seconds: this.config.sessions.healthCheckIntervalSeconds,
          last_round: this.lastRound ?? null,
        },
      },
    };
  }

  onApplicationShutdown(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.dropLock();
  }
}

async function forEachLimited<T>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await work(items[next++]);
  });
  await Promise.all(lanes);
}
