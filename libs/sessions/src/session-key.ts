import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { AppConfig } from '@app/config';
import { SessionCipher } from './session-cipher';

export const SESSION_CIPHER = Symbol('SESSION_CIPHER');

/**
 * The cipher for stored credentials. SESSION_ENCRYPTION_KEY is required in production (config
 * refuses to start without it). Elsewhere, so that the embedded first start works, a random
 * development key is created once in a file beside the embedded data directory and reused;
 * it is never derived from anything guessable.
 */
export function createSessionCipher(config: AppConfig['sessions'], logger: Logger): SessionCipher {
  if (config.encryptionKey)
    return new SessionCipher(config.encryptionKey, config.encryptionKeyPrevious);
  const key = readOrCreateDevKey(config.devKeyFile);
  logger.warn(
    { file: config.devKeyFile },
    'SESSION_ENCRYPTION_KEY is not set: session credentials are encrypted with a development key kept in a local file (set SESSION_ENCRYPTION_KEY in production)',
  );
  return new SessionCipher(key, config.encryptionKeyPrevious);
}

function readOrCreateDevKey(file: string): string {
  try {
    return validDevKey(file, readFileSync(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(path.dirname(file), { recursive: true });
  const key = randomBytes(32).toString('hex');
  try {
    // 'wx' fails if another process created it first; then that one's key wins.
    writeFileSync(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return validDevKey(file, readFileSync(file, 'utf8'));
  }
}

function validDevKey(file: string, text: string): string {
  const key = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(key))
    throw new Error(`${file}: expected a session encryption key of 64 hex characters`);
  return key.toLowerCase();
}
