import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

export const API_KEY_PREFIX = 'sk-sy-';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
/** 40 base62 characters ≈ 238 bits of entropy. */
const RANDOM_LENGTH = 40;
/** Longest credential we bother hashing; anything longer is malformed, not unknown. */
export const MAX_PRESENTED_KEY_LENGTH = 512;

/** A new key `sk-sy-<base62>`; rejection sampling keeps every character equally likely. */
export function generateApiKey(): string {
  let out = '';
  while (out.length < RANDOM_LENGTH) {
    for (const byte of randomBytes(RANDOM_LENGTH)) {
      // 62 * 4 = 248: bytes at or above it would bias the low characters.
      if (byte < 248 && out.length < RANDOM_LENGTH) out += BASE62[byte % 62];
    }
  }
  return `${API_KEY_PREFIX}${out}`;
}

export function hashApiKey(key: string): string {
  return hash('sha256', key, 'hex');
}

/**
 * The part humans see in listings. Generated keys show `sk-sy-` plus four characters; for
 * operator-chosen bootstrap keys only four characters are shown, since they may be short.
 */
export function displayPrefix(key: string): string {
  if (key.startsWith(API_KEY_PREFIX)) return key.slice(0, API_KEY_PREFIX.length + 4);
  return `${key.slice(0, 4)}…`;
}

export function hashesEqual(aHex: string, bHex: string): boolean {
  const a = Buffer.from(aHex, 'hex');
  const b = Buffer.from(bHex, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

export type PresentedKey =
  { kind: 'missing' } | { kind: 'malformed' } | { kind: 'key'; key: string };

/**
 * Reads the key from `Authorization: Bearer <key>` or `X-API-Key: <key>`. A header that is
 * present but unusable (another scheme, empty, spaces, absurd length) is malformed.
 */
export function presentedKey(headers: Record<string, string | string[] | undefined>): PresentedKey {
  const authorization = headers['authorization'];
  const apiKeyHeader = headers['x-api-key'];
  let raw: string | undefined;
  if (authorization !== undefined) {
    if (typeof authorization !== 'string') return { kind: 'malformed' };
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization.trim());
    if (!match) {
      // An X-API-Key next to some other Authorization scheme (e.g. a proxy's Basic) still counts.
      if (typeof apiKeyHeader === 'string') raw = apiKeyHeader.trim();
      else return { kind: 'malformed' };
    } else raw = match[1];
  } else if (apiKeyHeader !== undefined) {
    if (typeof apiKeyHeader !== 'string') return { kind: 'malformed' };
    raw = apiKeyHeader.trim();
  } else {
    return { kind: 'missing' };
  }
  if (raw.length === 0 || raw.length > MAX_PRESENTED_KEY_LENGTH || /\s/.test(raw))
    return { kind: 'malformed' };
  return { kind: 'key', key: raw };
}
