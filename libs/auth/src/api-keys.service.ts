import { Injectable } from '@nestjs/common';
import { DatabaseService } from '@app/database';
import { ApiError } from '@app/observability';
import { ApiKeyCache } from './api-key-cache.service';
import { ApiKeyChanges, ApiKeyRepository } from './api-key.repository';
import { ALL_SCOPES, ApiKeyRecord, ApiKeyView, toKeyView } from './api-key.types';
import { displayPrefix, generateApiKey, hashApiKey } from './api-key.util';
import { AuditService } from './audit.service';
import { PageCursor, toPage } from './pagination';
import { UsersRepository } from './users.repository';

export interface NewKeyInput {
  userId: string;
  name: string;
  scopes?: string[];
  rateLimitPerMinute?: number | null;
  rateLimitPerHour?: number | null;
  expiresAt?: Date | null;
  cacheScope?: 'user' | 'shared';
}

/** A freshly made key: the only moment the secret exists outside the client. */
export interface IssuedKey extends ApiKeyView {
  key: string;
}

export const DEFAULT_ROTATION_GRACE_SECONDS = 24 * 3600;

/**
 * Creating, editing, rotating and revoking API keys. Each change commits with its audit row and
 * then invalidates the key cache on every replica.
 */
@Injectable()
export class ApiKeysService {
  constructor(
    private readonly db: DatabaseService,
    private readonly keys: ApiKeyRepository,
    private readonly users: UsersRepository,
    private readonly cache: ApiKeyCache,
    private readonly audit: AuditService,
  ) {}

  async create(input: NewKeyInput, actor: string): Promise<IssuedKey> {
    const key = generateApiKey();
    const keyHash = hashApiKey(key);
    const record = await this.db.transaction(async (tx) => {
      if (!(await this.users.findById(input.userId, tx)))
        throw ApiError.notFound('No user with this id', 'user_not_found', 'user_id');
      const created = await this.keys.insert(
        {
          userId: input.userId,
          name: input.name,
          prefix: displayPrefix(key),
          keyHash,
          scopes: input.scopes ?? [...ALL_SCOPES],
          rateLimitPerMinute: input.rateLimitPerMinute ?? null,
          rateLimitPerHour: input.rateLimitPerHour ?? null,
          cacheScope: input.cacheScope ?? 'user',
          expiresAt: input.expiresAt ?? null,
        },
        tx,
      );
      await this.audit.record(actor, 'api_key.create', created.id, describe(created), tx);
      return created;
    }, 'api_key_create');
    // Another replica may remember this hash as unknown (negative cache entry).
    await this.cache.invalidate({ hashes: [keyHash] });
    return { ...toKeyView(record), key };
  }

  async get(id: string): Promise<ApiKeyView> {
    const record = await this.keys.findById(id);
    if (!record) throw keyNotFound();
    return toKeyView(record);
  }

  async list(
    filter: { userId?: string },
    limit: number,
    cursor?: PageCursor,
  ): Promise<{ data: ApiKeyView[]; next_cursor: string | null }> {
    const now = Date.now();
    const rows = await this.keys.list(filter, limit + 1, cursor);
    return toPage(rows, limit, (row) => toKeyView(row, now));
  }

  async update(id: string, changes: ApiKeyChanges, actor: string): Promise<ApiKeyView> {
    const record = await this.db.transaction(async (tx) => {
      const updated = await this.keys.update(id, changes, tx);
      if (!updated) throw keyNotFound();
      const logged = changeLog(changes);
      // An empty PATCH changes nothing and is not an admin change worth a row.
      if (Object.keys(logged).length > 0)
        await this.audit.record(actor, 'api_key.update', id, { changes: logged }, tx);
      return updated;
    }, 'api_key_update');
    await this.cache.invalidate({ ids: [id], hashes: [record.keyHash] });
    return toKeyView(record);
  }

  /**
   * Issues a replacement with the same settings; the old key keeps working for `graceSeconds`
   * so clients can switch over without downtime (0 revokes it at once).
   */
  async rotate(
    id: string,
    graceSeconds: number,
    actor: string,
  ): Promise<IssuedKey & { old_key: ApiKeyView }> {
    const key = generateApiKey();
    const keyHash = hashApiKey(key);
    const now = Date.now();
    const { created, old } = await this.db.transaction(async (tx) => {
      const current = await this.keys.lockById(id, tx);
      if (!current) throw keyNotFound();
      if (current.revokedAt && current.revokedAt.getTime() <= now)
        throw new ApiError(409, 'conflict_error', 'key_revoked', 'A revoked key cannot be rotated');
      // A second rotation would leave two live replacements of one key, each a secret to track.
      if (current.revokedAt)
        throw new ApiError(
          409,
          'conflict_error',
          'key_rotating',
          'This key is already being rotated: rotate its replacement, or revoke it now with DELETE',
        );
      // The replacement would inherit the past expiry and be dead on arrival.
      if (current.expiresAt && current.expiresAt.getTime() <= now)
        throw new ApiError(
          409,
          'conflict_error',
          'key_expired',
          'An expired key cannot be rotated; create a new key instead',
        );
      const replacement = await this.keys.insert(
        {
          userId: current.userId,
          name: current.name,
          prefix: displayPrefix(key),
          keyHash,
          scopes: current.scopes,
          rateLimitPerMinute: current.rateLimitPerMinute,
          rateLimitPerHour: current.rateLimitPerHour,
          cacheScope: current.cacheScope,
          expiresAt: current.expiresAt,
          rotatedFrom: current.id,
        },
        tx,
      );
      const retired = (await this.keys.revokeAt(id, new Date(now + graceSeconds * 1000), tx))!;
      await this.audit.record(
        actor,
        'api_key.rotate',
        id,
        {
          new_key_id: replacement.id,
          new_prefix: replacement.prefix,
          grace_period_seconds: graceSeconds,
          old_key_revoked_at: retired.revokedAt?.toISOString() ?? null,
        },
        tx,
      );
      return { created: replacement, old: retired };
    }, 'api_key_rotate');
    await this.cache.invalidate({ ids: [id], hashes: [old.keyHash, keyHash] });
    return { ...toKeyView(created), key, old_key: toKeyView(old) };
  }

  /** Revokes now; revoking an already revoked key is a no-op that answers the same. */
  async revoke(id: string, actor: string): Promise<ApiKeyView> {
    const record = await this.db.transaction(async (tx) => {
      const current = await this.keys.findById(id, tx);
      if (!current) throw keyNotFound();
      const alreadyRevoked =
        current.revokedAt !== null && current.revokedAt.getTime() <= Date.now();
      if (alreadyRevoked) return current;
      const revoked = (await this.keys.revokeAt(id, new Date(), tx))!;
      await this.audit.record(actor, 'api_key.revoke', id, describe(revoked), tx);
      return revoked;
    }, 'api_key_revoke');
    await this.cache.invalidate({ ids: [id], hashes: [record.keyHash] });
    return toKeyView(record);
  }
}

function keyNotFound(): ApiError {
  return ApiError.notFound('No API key with this id', 'key_not_found');
}

/** What an audit row may say about a key: never the secret or its hash. */
function describe(key: ApiKeyRecord): Record<string, unknown> {
  return {
    user_id: key.userId,
    name: key.name,
    prefix: key.prefix,
    scopes: key.scopes,
    rate_limit_per_minute: key.rateLimitPerMinute,
    rate_limit_per_hour: key.rateLimitPerHour,
    expires_at: key.expiresAt?.toISOString() ?? null,
  };
}

function changeLog(changes: ApiKeyChanges): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (changes.name !== undefined) out.name = changes.name;
  if (changes.scopes !== undefined) out.scopes = changes.scopes;
  if (changes.rateLimitPerMinute !== undefined)
    out.rate_limit_per_minute = changes.rateLimitPerMinute;
  if (changes.rateLimitPerHour !== undefined) out.rate_limit_per_hour = changes.rateLimitPerHour;
  if (changes.cacheScope !== undefined) out.cache_scope = changes.cacheScope;
  if (changes.expiresAt !== undefined) out.expires_at = changes.expiresAt?.toISOString() ?? null;
  return out;
}
