import fc from 'fast-check';
import {
  displayPrefix,
  generateApiKey,
  hashApiKey,
  hashesEqual,
  MAX_PRESENTED_KEY_LENGTH,
  presentedKey,
} from './api-key.util';
import { keyStatus } from './api-key.types';
import type { ApiKeyRecord } from './api-key.types';

describe('generateApiKey', () => {
  it('makes sk-sy- keys of 40 base62 characters, all different', () => {
    const keys = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const key = generateApiKey();
      expect(key).toMatch(/^sk-sy-[0-9A-Za-z]{40}$/);
      keys.add(key);
    }
    expect(keys.size).toBe(500);
  });

  it('uses every base62 character (no truncated alphabet)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) for (const ch of generateApiKey().slice(6)) seen.add(ch);
    expect(seen.size).toBe(62);
  });
});

describe('hashApiKey / hashesEqual / displayPrefix', () => {
  it('hashes to sha256 hex and compares hashes', () => {
    const h = hashApiKey('sk-sy-abc');
    // The digest stored for keys issued by earlier releases: sha256 of the key, hex.
    expect(h).toBe('57b493135abd78a22836d8dcc7502276673659c180d4108cb686323bff07889b');
    expect(hashesEqual(h, hashApiKey('sk-sy-abc'))).toBe(true);
    expect(hashesEqual(h, hashApiKey('sk-sy-abd'))).toBe(false);
    expect(hashesEqual(h, 'abcd')).toBe(false);
  });

  it('shows sk-sy- plus 4 characters, or 4 characters of an operator-chosen key', () => {
    expect(displayPrefix('sk-sy-ABCDEFGH')).toBe('sk-sy-ABCD');
    expect(displayPrefix('my-own-bootstrap-key')).toBe('my-o…');
  });
});

describe('presentedKey', () => {
  it('reads Bearer and X-API-Key the same way for any well-formed key', () => {
    const token = fc.stringMatching(/^[!-~]{1,200}$/);
    fc.assert(
      fc.property(token, (key) => {
        expect(presentedKey({ authorization: `Bearer ${key}` })).toEqual({ kind: 'key', key });
        expect(presentedKey({ authorization: `bearer   ${key} ` })).toEqual({ kind: 'key', key });
        expect(presentedKey({ 'x-api-key': key })).toEqual({ kind: 'key', key });
      }),
    );
  });

  it('tells missing from malformed', () => {
    expect(presentedKey({})).toEqual({ kind: 'missing' });
    for (const authorization of ['Basic abc', 'Bearer', 'Bearer ', 'Bearer a b', 'sk-sy-x'])
      expect(presentedKey({ authorization })).toEqual({ kind: 'malformed' });
    expect(presentedKey({ 'x-api-key': '' })).toEqual({ kind: 'malformed' });
    expect(presentedKey({ 'x-api-key': 'a b' })).toEqual({ kind: 'malformed' });
    expect(presentedKey({ 'x-api-key': ['a', 'b'] })).toEqual({ kind: 'malformed' });
    expect(presentedKey({ 'x-api-key': 'k'.repeat(MAX_PRESENTED_KEY_LENGTH + 1) })).toEqual({
      kind: 'malformed',
    });
  });

  it('falls back to X-API-Key when Authorization carries another scheme', () => {
    expect(presentedKey({ authorization: 'Basic abc', 'x-api-key': 'k1' })).toEqual({
      kind: 'key',
      key: 'k1',
    });
    // A Bearer header wins over X-API-Key.
    expect(presentedKey({ authorization: 'Bearer k2', 'x-api-key': 'k1' })).toEqual({
      kind: 'key',
      key: 'k2',
    });
  });
});

describe('keyStatus', () => {
  const base: ApiKeyRecord = {
    id: 'id',
    userId: 'u',
    name: 'n',
    prefix: 'p',
    keyHash: 'h',
    scopes: [],
    rateLimitPerMinute: null,
    rateLimitPerHour: null,
    cacheScope: 'user',
    rotatedFrom: null,
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
    createdAt: new Date(0),
  };
  const now = Date.parse('2030-01-01T00:00:00Z');

  it('derives active, rotating, revoked and expired', () => {
    expect(keyStatus(base, now)).toBe('active');
    expect(keyStatus({ ...base, revokedAt: new Date(now + 1000) }, now)).toBe('rotating');
    expect(keyStatus({ ...base, revokedAt: new Date(now) }, now)).toBe('revoked');
    expect(keyStatus({ ...base, expiresAt: new Date(now - 1) }, now)).toBe('expired');
    expect(
      keyStatus({ ...base, expiresAt: new Date(now - 1), revokedAt: new Date(now - 1) }, now),
    ).toBe('revoked');
  });
});
