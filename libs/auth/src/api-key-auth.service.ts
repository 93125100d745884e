import { Injectable } from '@nestjs/common';
import { ApiError } from '@app/observability';
import { ApiKeyCache } from './api-key-cache.service';
import { ApiKeyUsage } from './api-key-usage.service';
import { hashApiKey, hashesEqual, PresentedKey, presentedKey } from './api-key.util';
import { countAuthFailure } from './auth.metrics';
import { Principal } from './principal';

type Headers = Record<string, string | string[] | undefined>;

/** Called once the key is identified (even if it is then refused), for request logs. */
export type KeyIdentified = (fields: { userId: string; apiKeyId: string }) => void;

/**
 * Turns a presented API key into a Principal, or throws the 401/403 a client should see.
 * ApiKeyGuard uses it for HTTP routes; the WebSocket gateway can call it with upgrade headers.
 */
@Injectable()
export class ApiKeyAuthService {
  constructor(
    private readonly cache: ApiKeyCache,
    private readonly usage: ApiKeyUsage,
  ) {}

  async authenticateHeaders(
    headers: Headers,
    requiredScopes: string[] = [],
    identified?: KeyIdentified,
  ): Promise<Principal> {
    return this.authenticatePresented(presentedKey(headers), requiredScopes, identified);
  }

  /**
   * Calls `listener` with the ids of keys changed (edited, rotated, revoked) on any replica,
   * once this replica's key cache has dropped them. A change of every key at once (the cache
   * starting over after a Redis reconnect) names no ids: holders re-check on their own clock.
   */
  onKeysChanged(listener: (apiKeyIds: readonly string[]) => void): void {
    this.cache.onChange((change) => {
      if (change.ids && change.ids.length > 0) listener(change.ids);
    });
  }

  /** For clients that cannot send headers (browser WebSockets: `?api_key=`). */
  async authenticateKey(
    key: string | undefined,
    requiredScopes: string[] = [],
  ): Promise<Principal> {
    return this.authenticatePresented(
      presentedKey(key === undefined ? {} : { 'x-api-key': key }),
      requiredScopes,
    );
  }

  private async authenticatePresented(
    presented: PresentedKey,
    requiredScopes: string[],
    identified?: KeyIdentified,
  ): Promise<Principal> {
    if (presented.kind === 'missing') {
      countAuthFailure('missing');
      throw ApiError.unauthorized(
        'Missing API key. Send it as "Authorization: Bearer <key>" or "X-API-Key: <key>".',
      );
    }
    if (presented.kind === 'malformed') {
      countAuthFailure('malformed');
      throw ApiError.unauthorized(
        'Malformed API key header. Send "Authorization: Bearer <key>" or "X-API-Key: <key>".',
      );
    }
    const hash = hashApiKey(presented.key);
    const record = await this.cache.lookup(hash);
    // The lookup is by hash; the explicit constant-time comparison keeps it so if the cache's
    // data structure ever changes.
    if (!record || !hashesEqual(record.keyHash, hash)) {
      countAuthFailure('unknown');
      throw ApiError.unauthorized('Incorrect API key provided.');
    }
    identified?.({ userId: record.userId, apiKeyId: record.id });
    const now = Date.now();
    if (record.revokedAt && record.revokedAt.getTime() <= now) {
      countAuthFailure('revoked');
      throw ApiError.unauthorized('This API key has been revoked.', 'key_revoked');
    }
    if (record.expiresAt && record.expiresAt.getTime() <= now) {
      countAuthFailure('expired');
      throw ApiError.unauthorized('This API key has expired.', 'key_expired');
    }
    const missing = requiredScopes.filter((scope) => !record.scopes.includes(scope));
    if (missing.length > 0) {
      countAuthFailure('scope');
      throw ApiError.forbidden(`This API key lacks the scope(s): ${missing.join(', ')}.`);
    }
    this.usage.touch(record.id);
    return {
      userId: record.userId,
      apiKeyId: record.id,
      keyPrefix: record.prefix,
      scopes: [...record.scopes],
      rateLimitPerMinute: record.rateLimitPerMinute,
      rateLimitPerHour: record.rateLimitPerHour,
      cacheScope: record.cacheScope,
    };
  }
}
