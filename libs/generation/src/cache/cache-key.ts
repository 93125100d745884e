import { hash } from 'node:crypto';
import type { ChatMessage, ChatRequestBody } from './cache.types';

/**
 * Request fields that never change what the model answers. Leaving them out of the key lets a
 * streaming and a non-streaming request share an entry. Everything else IS in the key, so a
 * parameter we do not know yet can only cause a miss, never a wrong hit.
 */
const NON_OUTPUT_FIELDS = new Set([
  'stream',
  'stream_options',
  'user',
  'metadata',
  'store',
  'service_tier',
  // Routing and abuse-tracking hints of OpenAI's: they do not change the answer.
  'prompt_cache_key',
  'safety_identifier',
]);

/** Sorted keys, no undefined/null members: two spellings of one request give one string. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const member = (value as Record<string, unknown>)[key];
      if (member !== undefined && member !== null) out[key] = canonical(member);
    }
    return out;
  }
  return value;
}

function normalizeMessage(message: ChatMessage): unknown {
  const { content } = message;
  // [{type:'text', text:'hi'}] and 'hi' are the same prompt.
  if (
    Array.isArray(content) &&
    content.length === 1 &&
    (content[0] as { type?: unknown })?.type === 'text' &&
    typeof (content[0] as { text?: unknown }).text === 'string'
  ) {
    return { ...message, content: (content[0] as { text: string }).text };
  }
  return message;
}

/** The request reduced to what determines the answer, in a stable form. */
export function normalizeRequest(body: ChatRequestBody): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(body)) {
    if (NON_OUTPUT_FIELDS.has(field)) continue;
    out[field] = value;
  }
  out.messages = (body.messages ?? []).map(normalizeMessage);
  if (out.n === 1) delete out.n;
  if (typeof out.stop === 'string') out.stop = [out.stop];
  return canonical(out) as Record<string, unknown>;
}

export function requestHash(body: ChatRequestBody): string {
  // One-shot: half the CPU of createHash().update().digest() for a key this size (item 20).
  return hash('sha256', JSON.stringify(normalizeRequest(body)), 'hex');
}

/** Cache scope: one user's entries, or entries shared by every key configured as 'shared'. */
export type CacheScope = { kind: 'user'; userId: string } | { kind: 'shared' };

export const CACHE_KEY_ROOT = 'rc:';

/** Names made only of these come out of encodeURIComponent unchanged and hold no glob character. */
const PLAIN_SEGMENT = /^[A-Za-z0-9._-]*$/;

/** A model name as one key segment: no ':' (segment separator) and no glob characters. */
export function modelSegment(model: string): string {
  if (PLAIN_SEGMENT.test(model)) return model;
  // encodeURIComponent already escapes ':', '?', '[', ']' and the backslash; '*' is the one glob left.
  return encodeURIComponent(model).replace(/\*/g, '%2A');
}

function scopeSegment(scope: CacheScope): string {
  return scope.kind === 'shared' ? 'shared' : `u.${scope.userId}`;
}

/** rc:<scope>:<model>:<sha256>: the layout lets clears by user or by model find their keys. */
export function cacheKey(scope: CacheScope, body: ChatRequestBody): string {
  return `${CACHE_KEY_ROOT}${scopeSegment(scope)}:${modelSegment(body.model)}:${requestHash(body)}`;
}

/** Which entries a clear removes: every one, one user's, one model's, or both. */
export interface CacheSelector {
  userId?: string;
  model?: string;
}

/** A Redis glob for the selector (segments contain no glob characters, see modelSegment). */
export function selectorPattern(selector: CacheSelector): string {
  const scope = selector.userId ? `u.${selector.userId}` : '*';
  const model = selector.model ? modelSegment(selector.model) : '*';
  if (scope === '*' && model === '*') return `${CACHE_KEY_ROOT}*`;
  return `${CACHE_KEY_ROOT}${scope}:${model}:*`;
}

export function matchesSelector(key: string, selector: CacheSelector): boolean {
  if (!key.startsWith(CACHE_KEY_ROOT)) return false;
  const [scope, model] = key.slice(CACHE_KEY_ROOT.length).split(':');
  if (selector.userId && scope !== `u.${selector.userId}`) return false;
  if (selector.model && model !== modelSegment(selector.model)) return false;
  return true;
}

export interface CacheDirectives {
  /** Cache-Control: no-cache (or Pragma: no-cache): skip the lookup, store the fresh answer. */
  noCache: boolean;
  /** Cache-Control: no-store: neither read nor write the cache. */
  noStore: boolean;
  /** x-cache: force: cache this request even though its temperature is not 0. */
  force: boolean;
}

type Headers = Record<string, string | string[] | undefined>;

const NO_TOKENS: readonly string[] = [];

function headerTokens(headers: Headers, name: string): readonly string[] {
  const raw = headers[name];
  // Most requests send none of these headers.
  if (raw === undefined) return NO_TOKENS;
  const value = Array.isArray(raw) ? raw.join(',') : raw;
  return value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

export function parseCacheDirectives(headers: Headers): CacheDirectives {
  const control = headerTokens(headers, 'cache-control');
  return {
    noCache: control.includes('no-cache') || headerTokens(headers, 'pragma').includes('no-cache'),
    noStore: control.includes('no-store'),
    force: headerTokens(headers, 'x-cache').includes('force'),
  };
}

/**
 * What to do with one request:
 * - lookup: deterministic (temperature 0, or forced): serve a hit, or store the answer on a miss;
 * - refresh: deterministic but `no-cache`: go upstream and overwrite the entry;
 * - bypass: not deterministic, or `no-store`: the cache is not involved.
 */
export type CachePlan =
  | { mode: 'lookup'; key: string }
  | { mode: 'refresh'; key: string }
  | { mode: 'bypass'; reason: 'not_deterministic' | 'no_store' };

export function isDeterministic(body: ChatRequestBody, directives: CacheDirectives): boolean {
  return body.temperature === 0 || directives.force;
}

export function planCache(
  body: ChatRequestBody,
  directives: CacheDirectives,
  scope: CacheScope,
): CachePlan {
  if (directives.noStore) return { mode: 'bypass', reason: 'no_store' };
  if (!isDeterministic(body, directives)) return { mode: 'bypass', reason: 'not_deterministic' };
  const key = cacheKey(scope, body);
  return directives.noCache ? { mode: 'refresh', key } : { mode: 'lookup', key };
}
