/**
 * Who is calling a public route, as resolved from the API key by ApiKeyGuard and attached to the
 * request. Other modules read it with @CurrentPrincipal(); they never look at api_keys rows.
 */
export interface Principal {
  userId: string;
  apiKeyId: string;
  keyPrefix: string;
  scopes: string[];
  /** The key's own limits; null means "use the RATE_LIMIT_PER_* defaults". */
  rateLimitPerMinute: number | null;
  rateLimitPerHour: number | null;
  /** 'shared' lets cache entries be shared across users. */
  cacheScope: 'user' | 'shared';
}

/** An admin resolved from a JWT by AdminGuard. */
export interface AdminIdentity {
  userId: string;
  username: string;
  role: 'admin';
}

export type Scope = 'chat' | 'images' | 'jobs';
