import { randomBytes } from 'node:crypto';
import { argon2id, argon2Verify } from 'hash-wasm';

/** Shortest password create-admin and POST /admin/users accept. */
export const MIN_PASSWORD_LENGTH = 12;

/**
 * argon2id with the parameters of the reference implementation's defaults (64 MiB, 3 passes,
 * 4 lanes). hash-wasm runs it as WebAssembly: the native `argon2` package's prebuilt binary
 * crashed Node on a fresh install here, and a password hash must not depend on a compiler.
 * The output is the standard PHC string, so hashes made by either implementation verify.
 */
export function hashPassword(password: string): Promise<string> {
  return argon2id({
    password,
    salt: randomBytes(16),
    parallelism: 4,
    iterations: 3,
    memorySize: 65536,
    hashLength: 32,
    outputType: 'encoded',
  });
}

let dummyHash: Promise<string> | undefined;

/**
 * Checks a password. With no stored hash (unknown user, user without a password) it still
 * runs one argon2 verification, so response time does not reveal which usernames exist.
 */
export async function verifyPassword(
  hash: string | null | undefined,
  password: string,
): Promise<boolean> {
  if (!hash) {
    dummyHash ??= hashPassword('switchyard-timing-equaliser');
    await argon2Verify({ password, hash: await dummyHash }).catch(() => false);
    return false;
  }
  try {
    return await argon2Verify({ password, hash });
  } catch {
    return false;
  }
}
