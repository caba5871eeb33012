import argon2 from 'argon2';
import pLimit from 'p-limit';
import { randomBytes } from 'node:crypto';
import { randomToken } from '../crypto/index.js';

/** OWASP's Argon2id baseline: 19 MiB, 2 passes, 1 lane, 32-byte salt. argon2 runs on libuv's thread pool. */
export const ARGON2_OPTIONS = { type: argon2.argon2id, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;
const SALT_BYTES = 32;
/**
 * libuv's thread pool (4 threads by default) also serves JWT signing, file I/O and DNS. Argon2 may use at most half
 * of it, so a burst of logins (even with unknown e-mails) cannot starve every other request.
 */
const argon2Slots = pLimit(Math.max(1, Math.floor(Number(process.env.UV_THREADPOOL_SIZE ?? 4) / 2)));

export async function hashPassword(password: string): Promise<string> {
  const hash = await argon2Slots(() => argon2.hash(password, { ...ARGON2_OPTIONS, salt: randomBytes(SALT_BYTES) }));
  // The package writes `m,p,t`; the PHC string format (and other Argon2 libraries) expect `m,t,p`.
  return hash.replace(/\$m=(\d+),p=(\d+),t=(\d+)\$/, '$m=$1,t=$3,p=$2$');
}

export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  try {
    return await argon2Slots(() => argon2.verify(hash, password));
  } catch {
    return false;
  }
}

/** A one-time password handed to a new account: 144 random bits, URL-safe. */
export function generateOneTimePassword(): string {
  return randomToken(18);
}
