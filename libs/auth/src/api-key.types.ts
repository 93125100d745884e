/** An api_keys row as the gateway uses it (the hash never leaves libs/auth). */
export interface ApiKeyRecord {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  keyHash: string;
  scopes: string[];
  rateLimitPerMinute: number | null;
  rateLimitPerHour: number | null;
  cacheScope: 'user' | 'shared';
  rotatedFrom: string | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  createdAt: Date;
}

/** What the admin API shows for a key: everything but the hash. */
export interface ApiKeyView {
  id: string;
  user_id: string;
  name: string;
  prefix: string;
  scopes: string[];
  rate_limit_per_minute: number | null;
  rate_limit_per_hour: number | null;
  cache_scope: 'user' | 'shared';
  rotated_from: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  created_at: string;
  status: 'active' | 'expired' | 'revoked' | 'rotating';
}

export const ALL_SCOPES = ['chat', 'images', 'jobs'] as const;

export function keyStatus(key: ApiKeyRecord, now = Date.now()): ApiKeyView['status'] {
  if (key.revokedAt && key.revokedAt.getTime() <= now) return 'revoked';
  if (key.expiresAt && key.expiresAt.getTime() <= now) return 'expired';
  // A rotated key with a grace period: revocation is scheduled in the future.
  if (key.revokedAt) return 'rotating';
  return 'active';
}

export function toKeyView(key: ApiKeyRecord, now = Date.now()): ApiKeyView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: key.id,
    user_id: key.userId,
    name: key.name,
    prefix: key.prefix,
    scopes: key.scopes,
    rate_limit_per_minute: key.rateLimitPerMinute,
    rate_limit_per_hour: key.rateLimitPerHour,
    cache_scope: key.cacheScope,
    rotated_from: key.rotatedFrom,
    expires_at: iso(key.expiresAt),
    revoked_at: iso(key.revokedAt),
    last_used_at: iso(key.lastUsedAt),
    created_at: key.createdAt.toISOString(),
    status: keyStatus(key, now),
  };
}
