import { BeforeApplicationShutdown, Inject, Injectable, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { APP_CONFIG, AppConfig } from '@app/config';
import { counter, gauge, LOGGER } from '@app/observability';
import { DatabaseService } from './database.service';
import { RequestLogBatch, RequestLogBuffer } from './request-log.buffer';
import type { RequestLogEntry } from './request-log.types';

const FLUSH_INTERVAL_MS = 1000;
const PARTITION_DAYS_AHEAD = 3;

/**
 * One statement text for every batch, whatever its size: sixteen array parameters rather than
 * sixteen per row, so Postgres neither parses nor plans a VALUES list per batch. The ids come
 * with the rows, so a retried batch skips the rows an unanswered attempt did write.
 */
export const INSERT_BATCH = `
  INSERT INTO request_logs (request_id, api_key_id, user_id, method, route, model, provider, status_code,
    latency_ms, prompt_tokens, completion_tokens, cached, credits, error, created_at, id)
  SELECT request_id, api_key_id, user_id, method, route, model, provider, status_code,
    latency_ms, prompt_tokens, completion_tokens, cached, credits, error, to_timestamp(created_ms / 1000.0), id
  FROM unnest($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::int[], $9::float8[], $10::int[], $11::int[], $12::bool[], $13::bigint[], $14::text[], $15::float8[],
    $16::uuid[])
    AS r(request_id, api_key_id, user_id, method, route, model, provider, status_code,
      latency_ms, prompt_tokens, completion_tokens, cached, credits, error, created_ms, id)
  ON CONFLICT DO NOTHING`;

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
  private readonly buffer = new RequestLogBuffer();
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
    this.buffer.push(entry);
    this.enforceBound();
  }

  get pending(): number {
    return this.buffer.size;
  }

  /** Beyond REQUEST_LOG_BUFFER_MAX the oldest rows are dropped and counted. */
  private enforceBound(): void {
    const dropped = this.buffer.trimTo(this.config.requestLogs.bufferMax);
    if (dropped > 0) requestLogsDropped.inc(dropped);
    requestLogsBuffered.set(this.buffer.size);
  }

  /** Writes everything buffered; on failure the rows go back to the front of the buffer. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async drain(): Promise<void> {
    for (let batch = this.buffer.takeOldest(); batch; batch = this.buffer.takeOldest()) {
      try {
        await this.ensurePartitions();
        await this.insert(batch);
      } catch (err) {
        this.buffer.putBack(batch);
        this.enforceBound();
        this.logger.debug(
          { err: (err as Error).message, pending: this.buffer.size },
          'request log flush deferred',
        );
        break;
      } finally {
        requestLogsBuffered.set(this.buffer.size);
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

  private async insert(batch: RequestLogBatch): Promise<void> {
    await this.database.query(INSERT_BATCH, batch.columns(), 'request_logs_insert');
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
    if (this.buffer.size > 0)
      this.logger.warn(
        { lost: this.buffer.size },
        'request logs not written at shutdown (database unreachable)',
      );
  }
}
