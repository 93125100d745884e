import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import { LOGGER } from '@app/observability';
import { credentialHash, isEncrypted, SessionCipher } from './session-cipher';
import { SESSION_CIPHER } from './session-key';
import { SessionRow, SessionsRepository } from './sessions.repository';

type StoredCredential = Pick<SessionRow, 'id' | 'cookie_text' | 'cookie_hash'>;

/**
 * Turns stored credentials into usable ones and back. It is also what makes seed 000's
 * hand-inserted plain-text rows safe: they are used as they are and encrypted in place.
 */
@Injectable()
export class SessionCredentials {
  constructor(
    @Inject(SESSION_CIPHER) private readonly cipher: SessionCipher,
    private readonly repository: SessionsRepository,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  seal(plain: string): { cookieText: string; cookieHash: string } {
    return { cookieText: this.cipher.encrypt(plain), cookieHash: credentialHash(plain) };
  }

  /** Throws SessionDecryptError when neither configured key opens the value. */
  reveal(stored: string): string {
    return this.cipher.decrypt(stored);
  }

  /** Encrypts one hand-inserted row; safe to race with other replicas doing the same. */
  async encryptInPlace(row: StoredCredential): Promise<boolean> {
    if (isEncrypted(row.cookie_text)) return false;
    const plain = row.cookie_text;
    const sealed = this.seal(plain);
    if (sealed.cookieHash !== row.cookie_hash)
      this.logger.warn(
        { session_id: row.id },
        'hand-inserted session had a cookie_hash that is not the sha256 of its credential; corrected',
      );
    try {
      const done = await this.repository.replaceCredential(
        row.id,
        plain,
        sealed.cookieText,
        sealed.cookieHash,
      );
      if (done) this.logger.info({ session_id: row.id }, 'plain-text session credential encrypted');
      return done;
    } catch (err) {
      // Most likely the corrected hash collides with another row: the same credential twice.
      this.logger.error(
        { session_id: row.id, err: (err as Error).message },
        'could not encrypt a hand-inserted session credential',
      );
      return false;
    }
  }

  /** Encrypts every plain-text row; returns how many were encrypted. */
  async encryptAllPlaintext(): Promise<number> {
    let encrypted = 0;
    for (const row of await this.repository.plaintextRows())
      if (await this.encryptInPlace(row)) encrypted++;
    return encrypted;
  }

  /**
   * Moves every row to the current key (rows under SESSION_ENCRYPTION_KEY_PREVIOUS and
   * plain-text rows). Rows neither key opens are reported, never touched.
   */
  async reencryptAll(): Promise<{
    total: number;
    reencrypted: number;
    alreadyCurrent: number;
    plaintext: number;
    failed: string[];
  }> {
    const result = {
      total: 0,
      reencrypted: 0,
      alreadyCurrent: 0,
      plaintext: 0,
      failed: [] as string[],
    };
    for (const row of await this.repository.allCredentials()) {
      result.total++;
      if (!isEncrypted(row.cookie_text)) {
        if (await this.encryptInPlace(row)) result.plaintext++;
        else result.failed.push(row.id);
        continue;
      }
      let opened: { plain: string; underCurrentKey: boolean };
      try {
        opened = this.cipher.open(row.cookie_text);
      } catch {
        result.failed.push(row.id);
        continue;
      }
      if (opened.underCurrentKey) {
        result.alreadyCurrent++;
        continue;
      }
      const sealed = this.seal(opened.plain);
      if (
        await this.repository.replaceCredential(
          row.id,
          row.cookie_text,
          sealed.cookieText,
          sealed.cookieHash,
        )
      )
        result.reencrypted++;
      else result.failed.push(row.id);
    }
    return result;
  }
}
