export type ProviderKind = 'openai' | 'mock';
export type SessionAuth = 'none' | 'bearer' | 'cookie';

/** Knobs of the built-in mock provider, to rehearse slow or failing upstreams. */
export interface MockSettings {
  latency_ms?: number;
  chunk_delay_ms?: number;
  error_rate?: number;
  fail_status?: number;
}

/** A provider as the router sees it: the providers row plus what only the file holds (api_key). */
export interface ProviderConfig {
  id: string;
  name: string;
  kind: ProviderKind;
  baseUrl: string | null;
  /** From PROVIDERS_FILE only; never stored in Postgres or shown by the admin API. */
  apiKey?: string;
  sessionAuth: SessionAuth;
  priority: number;
  enabled: boolean;
  models: string[];
  timeoutMs: number;
  mock: MockSettings;
  /** False for a row whose provider is no longer in this replica's PROVIDERS_FILE: not routed. */
  configured: boolean;
  createdAt: Date;
  updatedAt: Date;
}

export interface ProviderView {
  id: string;
  name: string;
  kind: ProviderKind;
  base_url: string | null;
  session_auth: SessionAuth;
  priority: number;
  enabled: boolean;
  models: string[];
  timeout_ms: number;
  settings: MockSettings;
  has_api_key: boolean;
  configured: boolean;
  created_at: string;
  updated_at: string;
}

export function toProviderView(p: ProviderConfig): ProviderView {
  return {
    id: p.id,
    name: p.name,
    kind: p.kind,
    base_url: p.baseUrl,
    session_auth: p.sessionAuth,
    priority: p.priority,
    enabled: p.enabled,
    models: p.models,
    timeout_ms: p.timeoutMs,
    settings: p.mock,
    has_api_key: Boolean(p.apiKey),
    configured: p.configured,
    created_at: p.createdAt.toISOString(),
    updated_at: p.updatedAt.toISOString(),
  };
}
