import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '@app/observability';
import { RedisService } from '@app/redis';
import { ApiKeyRepository } from './api-key.repository';
import { ApiKeyRecord } from './api-key.types';

/** Pub/sub channel (prefixed with REDIS_KEY_PREFIX) that tells every replica to drop entries. */
export const KEY_INVALIDATION_CHANNEL = 'auth:api-keys:invalidate';

/** A safety net only: pub/sub normally makes changes visible within milliseconds. */
const POSITIVE_TTL_MS = 60_000;
/** Unknown keys are remembered briefly so a flood of bad keys does not become a flood of queries. */
const NEGATIVE_TTL_MS = 5_000;
const MAX_ENTRIES = 100_000;

interface Entry {
  record: ApiKeyRecord | null;
  fetchedAt: number;
}

export interface KeyInvalidation {
  ids?: string[];
  hashes?: string[];
  all?: boolean;
}

/**
 * In-process cache of api_keys rows by sha256, so authenticating a request costs no query.
 * Any change to a key (create, edit, rotate, revoke) is applied here at once and broadcast to
 * the other replicas over Redis pub/sub.
 */
@Injectable()
export class ApiKeyCache implements OnModuleInit {
  private readonly entries = new Map<string, Entry>();
  private readonly hashById = new Map<string, string>();
  /** Bumped on every invalidation; a lookup that raced with one does not store its result. */
  private generation = 0;
  private readonly changeListeners: Array<(change: KeyInvalidation) => void> = [];

  constructor(
    private readonly repository: ApiKeyRepository,
    private readonly redis: RedisService,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    // Messages published while we were disconnected are lost: start over after a reconnect,
    // of the subscriber connection (which can drop alone) as of the main one.
    this.redis.subscribe(
      KEY_INVALIDATION_CHANNEL,
      (message) => this.onMessage(message),
      () => this.apply({ all: true }),
    );
    this.redis.onConnectionChange((up) => {
      if (up) this.apply({ all: true });
    });
  }

  async lookup(keyHash: string): Promise<ApiKeyRecord | undefined> {
    const now = Date.now();
    const cached = this.entries.get(keyHash);
    if (cached) {
      const ttl = cached.record ? POSITIVE_TTL_MS : NEGATIVE_TTL_MS;
      if (now - cached.fetchedAt < ttl) return cached.record ?? undefined;
    }
    const generation = this.generation;
    let record: ApiKeyRecord | undefined;
    try {
      record = await this.repository.findByHash(keyHash);
    } catch (err) {
      // The database is down but we knew this key a minute ago: keep serving it.
      if (cached?.record) {
        this.logger.debug({ err: (err as Error).message }, 'api key refresh failed; using cache');
        return cached.record;
      }
      throw err;
    }
    if (generation === this.generation) this.store(keyHash, record ?? null, now);
    return record;
  }

  /**
   * Called after each change is applied here, from this replica or another one, so that a
   * holder of a long-lived authentication (a WebSocket) can check its key again at once.
   */
  onChange(listener: (change: KeyInvalidation) => void): void {
    this.changeListeners.push(listener);
  }

  /** Applies locally at once, then tells the other replicas. */
  async invalidate(change: KeyInvalidation): Promise<void> {
    this.apply(change);
    try {
      await this.redis.publish(KEY_INVALIDATION_CHANNEL, JSON.stringify(change));
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not broadcast api key change');
    }
  }

  private onMessage(message: string): void {
    try {
      this.apply(JSON.parse(message) as KeyInvalidation);
    } catch {
      this.apply({ all: true });
    }
  }

  private apply(change: KeyInvalidation): void {
    this.generation++;
    if (change.all) {
      this.entries.clear();
      this.hashById.clear();
    } else {
      for (const hash of change.hashes ?? []) this.entries.delete(hash);
      for (const id of change.ids ?? []) {
        const hash = this.hashById.get(id);
        if (hash) this.entries.delete(hash);
        this.hashById.delete(id);
      }
    }
    for (const listener of this.changeListeners) {
      try {
        listener(change);
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'api key change listener failed');
      }
    }
  }

  private store(keyHash: string, record: ApiKeyRecord | null, now: number): void {
    if (this.entries.size >= MAX_ENTRIES) {
      this.entries.clear();
      this.hashById.clear();
    }
    this.entries.set(keyHash, { record, fetchedAt: now });
    if (record) this.hashById.set(record.id, keyHash);
  }
}
