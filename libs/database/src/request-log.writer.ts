import { BeforeApplicationShutdown, Inject, Injectable, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { counter, gauge, LOGGER } from '@app/observability';
import { DatabaseService } from './database.service';

export interface RequestLogEntry {
  requestId: string;
  apiKeyId?: string | null;
  userId?: string | null;
  method: string;
  route: string;
  model?: string | null;
  provider?: string | null;
  statusCode: number;
  latencyMs: number;
  promptTokens?: number | null;
  completionTokens?: number | null;
  cached?: boolean;
  credits?: number;
  error?: string | null;
  createdAt?: Date;
}

const FLUSH_INTERVAL_MS = 1000;
const BATCH_SIZE = 500;
const PARTITION_DAYS_AHEAD = 3;
const COLUMNS = 15;

/**
 * The columns request_logs stores, in one literal with every field (not `{ ...entry, createdAt }`,
 * which on Node 20 makes a hidden class per call: docs/performance.md, item 16).
 */
export function requestLogRow(e: RequestLogEntry): RequestLogEntry {
  return {
    requestId: e.requestId,
    apiKeyId: e.apiKeyId,
    userId: e.userId,
    method: e.method,
    route: e.route,
    model: e.model,
    provider: e.provider,
    statusCode: e.statusCode,
    latencyMs: e.latencyMs,
    promptTokens: e.promptTokens,
    completionTokens: e.completionTokens,
    cached: e.cached,
    credits: e.credits,
    error: e.error,
    createdAt: e.createdAt ?? new Date(),
  };
}

const requestLogsDropped = counter(
  'gateway_request_logs_dropped_total',
  'Request-log rows dropped because the bounded buffer was full',
);
const requestLogsBuffered = gauge(
  'gateway_request_logs_buffered',
  'Request-log rows waiting to be written',
);

/**
 * Request logs are written in batches off the hot path. While Postgres is unreachable rows wait
 * in a bounded buffer (REQUEST_LOG_BUFFER_MAX); beyond it the oldest rows are dropped and
 * counted, so an outage costs memory only up to the bound.
 */
@Injectable()
export class RequestLogWriter implements OnModuleInit, BeforeApplicationShutdown {
  private buffer: RequestLogEntry[] = [];
  private timer?: NodeJS.Timeout;
  private flushing?: Promise<void>;
  private partitionsEnsuredFor = '';

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly database: DatabaseService,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.flush(), FLUSH_INTERVAL_MS);
    this.timer.unref();
  }

  record(entry: RequestLogEntry): void {
    this.buffer.push(requestLogRow(entry));
    const overflow = this.buffer.length - this.config.requestLogs.bufferMax;
    if (overflow > 0) {
      this.buffer.splice(0, overflow);
      requestLogsDropped.inc(overflow);
    }
    requestLogsBuffered.set(this.buffer.length);
  }

  get pending(): number {
    return this.buffer.length;
  }

  /** Writes everything buffered; on failure the rows go back to the front of the buffer. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async drain(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, BATCH_SIZE);
      try {
        await this.ensurePartitions();
        await this.insert(batch);
      } catch (err) {
        this.buffer.unshift(...batch);
        const overflow = this.buffer.length - this.config.requestLogs.bufferMax;
        if (overflow > 0) {
          this.buffer.splice(0, overflow);
          requestLogsDropped.inc(overflow);
        }
        this.logger.debug(
          { err: (err as Error).message, pending: this.buffer.length },
          'request log flush deferred',
        );
        break;
      } finally {
        requestLogsBuffered.set(this.buffer.length);
      }
    }
  }

  private async ensurePartitions(): Promise<void> {
    const today = new Date().toISOString().slice(0, 10);
    if (this.partitionsEnsuredFor === today) return;
    await this.database.query(
      'SELECT ensure_request_log_partitions($1)',
      [PARTITION_DAYS_AHEAD],
      'request_logs_partitions',
    );
    this.partitionsEnsuredFor = today;
  }

  private async insert(batch: RequestLogEntry[]): Promise<void> {
    const params: unknown[] = [];
    const rows = batch.map((e) => {
      const first = params.length + 1;
      params.push(
        e.requestId,
        e.apiKeyId ?? null,
        e.userId ?? null,
        e.method,
        e.route,
        e.model ?? null,
        e.provider ?? null,
        e.statusCode,
        e.latencyMs,
        e.promptTokens ?? null,
        e.completionTokens ?? null,
        e.cached ?? false,
        e.credits ?? 0,
        e.error ?? null,
        e.createdAt,
      );
      return `(${Array.from({ length: COLUMNS }, (_, j) => `$${first + j}`).join(', ')})`;
    });
    await this.database.query(
      `INSERT INTO request_logs (request_id, api_key_id, user_id, method, route, model, provider, status_code, latency_ms,
         prompt_tokens, completion_tokens, cached, credits, error, created_at)
       VALUES ${rows.join(', ')}`,
      params,
      'request_logs_insert',
    );
  }

  /** Drops whole day partitions older than the retention; returns the dropped table names. */
  async dropExpiredPartitions(now = new Date()): Promise<string[]> {
    const cutoff = new Date(now.getTime() - this.config.requestLogs.retentionDays * 86_400_000);
    const cutoffName = `request_logs_${cutoff.toISOString().slice(0, 10).replace(/-/g, '')}`;
    const partitions = await this.database.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'request_logs' ORDER BY c.relname`,
    );
    const dropped: string[] = [];
    for (const { name } of partitions) {
      if (/^request_logs_\d{8}$/.test(name) && name < cutoffName) {
        await this.database.query(`DROP TABLE IF EXISTS ${name}`);
        dropped.push(name);
      }
    }
    if (dropped.length > 0)
      this.logger.info({ dropped }, 'request_logs partitions dropped by retention');
    return dropped;
  }

  /** Runs after the HTTP server has drained and before the pool closes. */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush().catch(() => undefined);
    if (this.buffer.length > 0)
      this.logger.warn(
        { lost: this.buffer.length },
        'request logs not written at shutdown (database unreachable)',
      );
  }
}
