import { Injectable } from '@nestjs/common';
import { DatabaseService } from '@app/database';

/** Public API traffic over a window, read from request_logs (written by every replica). */
export interface TrafficWindow {
  requests: number;
  errors: number;
  clientErrors: number;
  rateLimited: number;
  cached: number;
  chatAnswered: number;
  creditsSpent: number;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  /** The database clock, so per-minute buckets line up with created_at. */
  now: Date;
}

export interface TrafficBucket {
  at: Date;
  requests: number;
  errors: number;
}

export interface ProviderTraffic {
  provider: string;
  requests: number;
  errors: number;
  p95Ms: number | null;
}

/*
 * Only the public API counts as traffic: the admin console polls /admin/stats itself, and the
 * WebSocket route's "latency" is a connection's lifetime. Both filters use the route template.
 */
const PUBLIC_TRAFFIC = `route LIKE '/v1/%' AND route <> '/v1/ws'`;

/**
 * Read-only SQL over request_logs for the admin overview. No module exposes an aggregate of the
 * request log (it is written by the database module's batch writer and otherwise only dropped by
 * retention), so the overview reads it here; created_at is indexed and the window is short.
 */
@Injectable()
export class RequestTrafficRepository {
  constructor(private readonly db: DatabaseService) {}

  async window(seconds: number): Promise<TrafficWindow> {
    const rows = await this.db.query<{
      requests: string;
      errors: string;
      client_errors: string;
      rate_limited: string;
      cached: string;
      chat_answered: string;
      credits: string;
      p50: number | null;
      p95: number | null;
      p99: number | null;
      now: Date;
    }>(
      `SELECT count(*) AS requests,
              count(*) FILTER (WHERE status_code >= 500) AS errors,
              count(*) FILTER (WHERE status_code >= 400 AND status_code < 500) AS client_errors,
              count(*) FILTER (WHERE status_code = 429) AS rate_limited,
              count(*) FILTER (WHERE cached) AS cached,
              count(*) FILTER (WHERE route = '/v1/chat/completions' AND status_code < 400) AS chat_answered,
              coalesce(sum(credits), 0) AS credits,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99,
              now() AS now
       FROM request_logs
       WHERE created_at > now() - make_interval(secs => $1) AND ${PUBLIC_TRAFFIC}`,
      [seconds],
      'admin_stats_traffic',
    );
    const row = rows[0];
    return {
      requests: Number(row.requests),
      errors: Number(row.errors),
      clientErrors: Number(row.client_errors),
      rateLimited: Number(row.rate_limited),
      cached: Number(row.cached),
      chatAnswered: Number(row.chat_answered),
      creditsSpent: Number(row.credits),
      p50Ms: roundMs(row.p50),
      p95Ms: roundMs(row.p95),
      p99Ms: roundMs(row.p99),
      now: new Date(row.now),
    };
  }

  /** Requests and 5xx per minute for the last `minutes` minutes (empty minutes are left out). */
  async perMinute(minutes: number): Promise<TrafficBucket[]> {
    const rows = await this.db.query<{ at: Date; requests: string; errors: string }>(
      `SELECT date_trunc('minute', created_at) AS at,
              count(*) AS requests,
              count(*) FILTER (WHERE status_code >= 500) AS errors
       FROM request_logs
       WHERE created_at >= date_trunc('minute', now()) - make_interval(mins => $1 - 1)
         AND ${PUBLIC_TRAFFIC}
       GROUP BY 1 ORDER BY 1`,
      [minutes],
      'admin_stats_series',
    );
    return rows.map((r) => ({
      at: new Date(r.at),
      requests: Number(r.requests),
      errors: Number(r.errors),
    }));
  }

  async byProvider(seconds: number, limit: number): Promise<ProviderTraffic[]> {
    const rows = await this.db.query<{
      provider: string;
      requests: string;
      errors: string;
      p95: number | null;
    }>(
      `SELECT provider, count(*) AS requests,
              count(*) FILTER (WHERE status_code >= 500) AS errors,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
       FROM request_logs
       WHERE created_at > now() - make_interval(secs => $1) AND ${PUBLIC_TRAFFIC}
         AND provider IS NOT NULL
       GROUP BY provider ORDER BY count(*) DESC, provider LIMIT $2`,
      [seconds, limit],
      'admin_stats_providers',
    );
    return rows.map((r) => ({
      provider: r.provider,
      requests: Number(r.requests),
      errors: Number(r.errors),
      p95Ms: roundMs(r.p95),
    }));
  }
}

function roundMs(value: number | null): number | null {
  return value === null || value === undefined ? null : Math.round(Number(value) * 10) / 10;
}
