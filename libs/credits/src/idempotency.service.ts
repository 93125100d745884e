import { Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { ApiError } from '@app/observability';
import { idempotencyConflict, idempotencyInProgress } from './credits.errors';
import { IdempotencyRepository, StoredResponse } from './idempotency.repository';

/** A completed response is replayed for this long (Stripe keeps keys for 24 h too). */
const TTL_SECONDS = 24 * 3600;
/** An attempt that dies while holding a key gives it up after this long. */
const LOCK_SECONDS = 600;
/** How long a retry waits for the first attempt before answering 409 idempotency_in_progress. */
const DEFAULT_WAIT_MS = 15_000;
const POLL_MS = 100;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export interface IdempotentRequest {
  userId: string;
  key: string;
  method: string;
  /** Route template, so that one key cannot be replayed on another endpoint. */
  route: string;
  body: unknown;
}

export type IdempotencyClaim =
  { kind: 'execute'; userId: string; key: string } | { kind: 'replay'; response: StoredResponse };

/** JSON with sorted object keys, so that {"a":1,"b":2} and {"b":2,"a":1} hash the same. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

export function requestHashOf(
  request: Pick<IdempotentRequest, 'method' | 'route' | 'body'>,
): string {
  return createHash('sha256')
    .update(`${request.method.toUpperCase()} ${request.route}\n${canonicalJson(request.body)}`)
    .digest('hex');
}

/**
 * The `Idempotency-Key` header of every route that takes one (chat, images, async jobs);
 * undefined only when the header is absent. An empty or blank value is a 400 like any other
 * malformed key: taking it as "no key" would run and charge a retry the client meant to be safe.
 */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined || !KEY_PATTERN.test(value))
    throw ApiError.badRequest(
      'Idempotency-Key must be 1 to 255 printable ASCII characters',
      'Idempotency-Key',
      'invalid_idempotency_key',
    );
  return value;
}

/**
 * `Idempotency-Key` for billable requests (DESIGN §4), kept in Postgres so it holds across
 * replicas. The first request with a key claims it and runs; a retry with the same body gets
 * the stored response (waiting while the first is still running), never a second charge; the
 * same key with another body is a 409. Only successful responses are stored: a failed attempt
 * (refunded, or refused before any charge) releases the key so that the retry runs again.
 * The route is part of the fingerprint, and every route that takes the header claims here
 * (chat, images, and the async job submit in libs/jobs): a key is one request on one endpoint,
 * and the same key on another endpoint is the 409.
 */
@Injectable()
export class IdempotencyService {
  constructor(private readonly repository: IdempotencyRepository) {}

  async begin(request: IdempotentRequest, waitMs = DEFAULT_WAIT_MS): Promise<IdempotencyClaim> {
    return this.beginHashed(request.userId, request.key, requestHashOf(request), waitMs);
  }

  /** `begin` with the request's fingerprint taken earlier (before the body was rewritten). */
  async beginHashed(
    userId: string,
    key: string,
    hash: string,
    waitMs = DEFAULT_WAIT_MS,
  ): Promise<IdempotencyClaim> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (await this.repository.claim(userId, key, hash, LOCK_SECONDS, TTL_SECONDS))
        return { kind: 'execute', userId, key };
      const record = await this.repository.find(userId, key);
      if (!record) continue; // released or expired between the two statements: claim again
      if (record.requestHash !== hash) throw idempotencyConflict();
      if (record.status === 'completed' && record.response)
        return { kind: 'replay', response: record.response };
      if (Date.now() >= deadline) throw idempotencyInProgress();
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** Stores the response of a successful attempt for replay. */
  async complete(claim: { userId: string; key: string }, response: StoredResponse): Promise<void> {
    await this.repository.complete(claim.userId, claim.key, response);
  }

  /** Forgets a failed attempt so that a retry with the same key runs again. */
  async release(claim: { userId: string; key: string }): Promise<void> {
    await this.repository.release(claim.userId, claim.key);
  }

  /**
   * The whole protocol for a non-streaming request: replay, or run `execute` once and store its
   * response when it succeeded (2xx), release the key when it did not.
   */
  async run(
    request: IdempotentRequest,
    execute: () => Promise<StoredResponse>,
  ): Promise<StoredResponse & { replayed: boolean }> {
    const claim = await this.begin(request);
    if (claim.kind === 'replay') return { ...claim.response, replayed: true };
    let response: StoredResponse;
    try {
      response = await execute();
    } catch (err) {
      await this.release(claim).catch(() => undefined);
      throw err;
    }
    // The work is done either way: a failure to record it must not turn it into an error. The
    // key then stays held until its lock runs out, so a retry still cannot charge twice.
    if (response.status >= 200 && response.status < 300)
      await this.complete(claim, response).catch(() => undefined);
    else await this.release(claim).catch(() => undefined);
    return { ...response, replayed: false };
  }

  async deleteExpired(): Promise<number> {
    return this.repository.deleteExpired();
  }
}
