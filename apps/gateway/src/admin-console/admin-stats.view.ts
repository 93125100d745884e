import type { BreakerView } from '@app/circuit-breaker';
import type { CacheStats } from '@app/generation';
import type { QueueDepth } from '@app/jobs';
import type { SessionCounts } from '@app/sessions';
import type { ProviderTraffic, TrafficBucket, TrafficWindow } from './request-traffic.repository';

export const SERIES_MINUTES = 30;

export interface TrafficView {
  requests: number;
  requests_per_minute: number;
  errors: number;
  error_rate: number | null;
  client_errors: number;
  rate_limited: number;
  p50_latency_ms: number | null;
  p95_latency_ms: number | null;
  p99_latency_ms: number | null;
  cached: number;
  cache_hit_rate: number | null;
  credits_spent: number;
  by_provider: {
    provider: string;
    requests: number;
    errors: number;
    p95_latency_ms: number | null;
  }[];
  series: { bucket_seconds: 60; points: { at: string; requests: number; errors: number }[] };
}

export function trafficView(
  window: TrafficWindow,
  windowSeconds: number,
  buckets: TrafficBucket[],
  providers: ProviderTraffic[],
): TrafficView {
  return {
    requests: window.requests,
    requests_per_minute: round2((window.requests * 60) / windowSeconds),
    errors: window.errors,
    error_rate: ratio(window.errors, window.requests),
    client_errors: window.clientErrors,
    rate_limited: window.rateLimited,
    p50_latency_ms: window.p50Ms,
    p95_latency_ms: window.p95Ms,
    p99_latency_ms: window.p99Ms,
    cached: window.cached,
    // Share of answered chat completions served from the cache in the window.
    cache_hit_rate: ratio(window.cached, window.chatAnswered),
    credits_spent: window.creditsSpent,
    by_provider: providers.map((p) => ({
      provider: p.provider,
      requests: p.requests,
      errors: p.errors,
      p95_latency_ms: p.p95Ms,
    })),
    series: { bucket_seconds: 60, points: fillMinutes(buckets, window.now, SERIES_MINUTES) },
  };
}

/** One point per minute, oldest first, ending with the minute of `now`; missing minutes are 0. */
export function fillMinutes(
  buckets: TrafficBucket[],
  now: Date,
  minutes: number,
): { at: string; requests: number; errors: number }[] {
  const byMinute = new Map(buckets.map((b) => [Math.floor(b.at.getTime() / 60_000), b]));
  const last = Math.floor(now.getTime() / 60_000);
  const points = [];
  for (let minute = last - minutes + 1; minute <= last; minute++) {
    const bucket = byMinute.get(minute);
    points.push({
      at: new Date(minute * 60_000).toISOString(),
      requests: bucket?.requests ?? 0,
      errors: bucket?.errors ?? 0,
    });
  }
  return points;
}

export function breakersView(list: BreakerView[]) {
  const counts = { closed: 0, open: 0, half_open: 0 };
  for (const b of list) counts[b.state] += 1;
  return {
    ...counts,
    data: list.map((b) => ({
      name: b.name,
      state: b.state,
      failures: b.failures,
      next_attempt_at: b.nextAttemptAt,
    })),
  };
}

export function sessionsView(counts: SessionCounts) {
  const byStatus = { healthy: 0, quarantined: 0, expired: 0, disabled: 0 };
  for (const statuses of Object.values(counts))
    for (const [status, n] of Object.entries(statuses))
      byStatus[status as keyof typeof byStatus] += n;
  return { by_status: byStatus, by_provider: counts };
}

export function queueView(depth: QueueDepth) {
  return {
    pending: depth.pending,
    generating: depth.generating,
    oldest_pending_seconds: depth.oldestPendingSeconds,
    stuck: depth.stuck,
  };
}

export function cacheView(stats: CacheStats) {
  return {
    hit_rate: stats.hit_rate,
    hits: stats.hits,
    misses: stats.misses,
    bypasses: stats.bypasses,
    keys: stats.keys,
    memory_bytes: stats.memory_bytes,
    backend: stats.backend,
    counted_by: stats.counted_by,
  };
}

function ratio(part: number, whole: number): number | null {
  return whole === 0 ? null : Math.round((part / whole) * 10_000) / 10_000;
}

function round2(n: number): number {
  return Math.round(n * 100) / 100;
}
