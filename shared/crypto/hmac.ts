import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { CryptoError } from '../errors.js';

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const BLIND_INDEX_INFO = 'botserver-blind-index';

export function hmacSha256(key: Buffer, data: string | Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

export function hmacHex(key: Buffer, data: string | Buffer): string {
  return hmacSha256(key, data).toString('hex');
}

/**
 * Constant-time comparison of two hex strings (case-insensitive). Returns false, never throws, for different
 * lengths or non-hex input; the strings are validated first because Node's hex decoder stops silently at the
 * first bad character, which would make "zz" equal "yy".
 */
export function timingSafeEqualHex(a: string, b: string): boolean {
  if (typeof a !== 'string' || typeof b !== 'string') return false;
  if (a.length !== b.length || !HEX.test(a) || !HEX.test(b)) return false;
  return timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}

/**
 * Deterministic keyed index for equality search over encrypted columns. The HMAC key is an HKDF sub-key so that
 * the index never uses the encryption key itself; purpose and value are separated by NUL so that
 * ("ab", "c") and ("a", "bc") differ. Normalise the value (e.g. `normaliseEmail`) before calling.
 */
export function blindIndex(key: Buffer, purpose: string, value: string): string {
  if (purpose.length === 0 || purpose.includes('\0')) {
    throw new CryptoError('invalid_key', 'Blind index purpose must be non-empty and contain no NUL character');
  }
  const subKey = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), BLIND_INDEX_INFO, 32));
  try {
    return hmacHex(subKey, `${purpose}\0${value}`);
  } finally {
    subKey.fill(0);
  }
}

/** Canonical form of an e-mail address for blind indexing: NFKC, trimmed, lower-cased. */
export function normaliseEmail(email: string): string {
  // NFKC again after lower-casing: some lower-case mappings (e.g. "İ") produce sequences NFKC would recompose.
  return email.normalize('NFKC').trim().toLowerCase().normalize('NFKC');
}
