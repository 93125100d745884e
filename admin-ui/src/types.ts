// Shapes of the admin API answers the console reads (see docs/api.md).

export interface Provider {
  id: string;
  name: string;
  kind: 'mock' | 'openai';
  base_url: string | null;
  session_auth: 'none' | 'bearer' | 'cookie';
  priority: number;
  enabled: boolean;
  models: string[];
  timeout_ms: number;
  configured: boolean;
  breaker_state?: BreakerState;
}

export type BreakerState = 'closed' | 'open' | 'half_open';

export interface Breaker {
  name: string;
  state: BreakerState;
  failures: number;
  successRate: number | null;
  p95LatencyMs: number | null;
  openedAt: string | null;
  nextAttemptAt: string | null;
  forced: boolean;
  samples: number;
}

export interface UpstreamSession {
  id: string;
  provider: string;
  status: 'healthy' | 'quarantined' | 'expired' | 'disabled';
  failure_rate: number;
  success_count: number;
  failure_count: number;
  last_used_at: string | null;
  last_checked_at: string | null;
  quarantined_at: string | null;
  cooldown_until: string | null;
  expires_at: string | null;
  credential_preview: string;
  created_at: string;
}

export interface User {
  id: string;
  username: string;
  email: string | null;
  role: 'admin' | 'user';
  subscription_tier: string | null;
  balance: number;
  base_quota: number;
  created_at: string;
}

export interface ApiKey {
  id: string;
  user_id: string;
  name: string;
  prefix: string;
  scopes: string[];
  rate_limit_per_minute: number | null;
  rate_limit_per_hour: number | null;
  cache_scope: 'user' | 'shared';
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  created_at: string;
  status: 'active' | 'rotating' | 'revoked' | 'expired';
}

export interface IssuedKey extends ApiKey {
  key: string;
}

export interface CreditAccount {
  user_id: string;
  balance: number;
  base_quota: number;
  billing_cycle_end: string | null;
}

export interface LedgerEntry {
  id: string;
  event_type: string;
  amount: number;
  balance_after: number;
  request_id: string | null;
  idempotency_key: string | null;
  description: string | null;
  created_at: string;
}

export interface CreditAudit {
  balance_mismatches: unknown[];
  negative_balances: unknown[];
  negative_ledger_rows: unknown[];
  duplicate_idempotency_keys: unknown[];
  open_reservations: unknown[];
  healthy: boolean;
}

export interface AuditRow {
  id: string;
  actor: string;
  action: string;
  target: string | null;
  details: unknown;
  created_at: string;
}

export interface Job {
  id: string;
  user_id: string;
  type: 'chat' | 'image';
  status: 'pending' | 'generating' | 'succeeded' | 'failed' | 'cancelled';
  model: string | null;
  error: string | null;
  credits_charged: number;
  attempts: number;
  created_at: string;
  started_at: string | null;
  completed_at: string | null;
}

export interface CacheStats {
  hits: number;
  misses: number;
  bypasses: number;
  hit_rate: number | null;
  keys: number;
  memory_bytes: number;
  backend: 'redis' | 'memory';
  counted_by: 'cluster' | 'process';
  ttl_seconds: number;
}

export interface Stats {
  generated_at: string;
  window_seconds: number;
  traffic: {
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
    series: { bucket_seconds: number; points: { at: string; requests: number; errors: number }[] };
  } | null;
  cache: Omit<CacheStats, 'ttl_seconds'> | null;
  sessions: { by_status: Record<UpstreamSession['status'], number> } | null;
  breakers: {
    closed: number;
    open: number;
    half_open: number;
    data: { name: string; state: BreakerState }[];
  } | null;
  queue: {
    pending: number;
    generating: number;
    oldest_pending_seconds: number;
    stuck: number;
  } | null;
  redis: { mode: 'redis' | 'memory-fallback' | 'memory' };
  unavailable: string[];
}

/** What a page module provides: render into `root`; the returned function runs on leaving. */
export interface PageDef {
  path: string;
  title: string;
  render(root: HTMLElement): Promise<(() => void) | void>;
}
