import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

const PREFIX = 'enc:v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SessionDecryptError extends Error {
  constructor() {
    super('session credential cannot be decrypted with the configured key(s)');
    this.name = 'SessionDecryptError';
  }
}

/** sha256 hex of the plain credential: the `cookie_hash` column, same as seed 000's SQL. */
export function credentialHash(plain: string): string {
  return createHash('sha256').update(plain, 'utf8').digest('hex');
}

/**
 * True for a value written by the gateway. Anything else in `cookie_text` is a plain credential
 * (a row inserted by hand, seed 000's "Emergency Session Injection") that still has to be
 * encrypted in place.
 */
export function isEncrypted(stored: string): boolean {
  return stored.startsWith(PREFIX);
}

/**
 * AES-256-GCM for credentials at rest, stored as `enc:v1:<iv>:<tag>:<ciphertext>` (base64).
 * GCM's tag authenticates the ciphertext, so a wrong key is detected instead of yielding
 * garbage; decryption tries the current key, then the previous one during a key rotation.
 */
export class SessionCipher {
  private readonly current: Buffer;
  private readonly previous?: Buffer;

  constructor(currentHex: string, previousHex?: string) {
    this.current = SessionCipher.key(currentHex);
    this.previous = previousHex ? SessionCipher.key(previousHex) : undefined;
  }

  private static key(hex: string): Buffer {
    const key = Buffer.from(hex, 'hex');
    if (key.length !== 32) throw new Error('session encryption key must be 32 bytes (64 hex)');
    return key;
  }

  encrypt(plain: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.current, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return `${PREFIX}${iv.toString('base64')}:${tag.toString('base64')}:${body.toString('base64')}`;
  }

  /** Plain text of a stored value; a plain (hand-inserted) value is returned as is. */
  decrypt(stored: string): string {
    return this.open(stored).plain;
  }

  /** Also says whether the value is already under the current key (what reencrypt needs). */
  open(stored: string): { plain: string; underCurrentKey: boolean } {
    if (!isEncrypted(stored)) return { plain: stored, underCurrentKey: false };
    const parts = stored.slice(PREFIX.length).split(':');
    if (parts.length !== 3) throw new SessionDecryptError();
    const [iv, tag, body] = parts.map((p) => Buffer.from(p, 'base64'));
    if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new SessionDecryptError();
    const current = SessionCipher.tryKey(this.current, iv, tag, body);
    if (current !== undefined) return { plain: current, underCurrentKey: true };
    const previous = this.previous && SessionCipher.tryKey(this.previous, iv, tag, body);
    if (previous !== undefined) return { plain: previous, underCurrentKey: false };
    throw new SessionDecryptError();
  }

  private static tryKey(key: Buffer, iv: Buffer, tag: Buffer, body: Buffer): string | undefined {
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(body), decipher.final()]).toString('utf8');
    } catch {
      return undefined;
    }
  }
}

/** A cookie name (RFC 6265 token) of at most 32 characters, followed by `=` and a value. */
const COOKIE_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,32}=(?!=|$)/;

/**
 * What admins see instead of the credential: enough to tell sessions apart, never enough to use
 * one. `sso=abcdef…wxyz` → `sso=…wxyz`; short values show nothing of the secret. Only a real
 * cookie name is shown whole: in a padded base64 token (`dXNlcjpwYXNz…==`) the text before the
 * first `=` is the secret itself, so such a value gets no name.
 */
export function maskCredential(plain: string): string {
  const name = COOKIE_NAME.exec(plain)?.[0] ?? '';
  const secret = plain.slice(name.length);
  if (secret.length < 16) return `${name}…`;
  return `${name}…${secret.slice(-4)}`;
}
