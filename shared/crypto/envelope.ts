import { createCipheriv, createDecipheriv } from 'node:crypto';
import { CryptoError } from '../errors.js';
import { toBase64Url } from './base64url.js';
import { IV_BYTES, TAG_BYTES, fromCompact, parseEnvelope, toCompact, type Envelope } from './envelope-format.js';
import type { KeyRing } from './keyring.js';
import { IvPool } from './ivPool.js';

export type { Envelope } from './envelope-format.js';

const ALGORITHM = 'aes-256-gcm';
const ivs = new IvPool(IV_BYTES);

/**
 * Version and kid are authenticated along with the caller's AAD, so relabelling an envelope with another kid that
 * maps to the same key (label vs fingerprint) still fails. Kids cannot contain "|", so the prefix is unambiguous.
 */
function boundAad(kid: string, aad: string): Buffer {
  return Buffer.from(`v1|${kid}|${aad}`, 'utf8');
}

export function encrypt(ring: KeyRing, plaintext: Buffer | string, aad: string): Envelope {
  const kid = ring.currentKid;
  const iv = ivs.next();
  const cipher = createCipheriv(ALGORITHM, ring.currentKey, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(boundAad(kid, aad));
  const data = typeof plaintext === 'string' ? Buffer.from(plaintext, 'utf8') : plaintext;
  const ct = Buffer.concat([cipher.update(data), cipher.final()]);
  return { v: 1, kid, iv: toBase64Url(iv), tag: toBase64Url(cipher.getAuthTag()), ct: toBase64Url(ct) };
}

/** Checks the shape, finds the key, and returns plaintext only after the GCM tag has verified. */
export function decrypt(ring: KeyRing, envelope: unknown, aad: string): Buffer {
  const parsed = parseEnvelope(envelope);
  const key = ring.keyFor(parsed.kid);
  try {
    const decipher = createDecipheriv(ALGORITHM, key, parsed.iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(boundAad(parsed.kid, aad));
    decipher.setAuthTag(parsed.tag);
    const head = decipher.update(parsed.ct);
    return Buffer.concat([head, decipher.final()]);
  } catch {
    throw new CryptoError('decrypt_failed', 'Decryption failed: wrong key, wrong associated data or tampered data');
  }
}

export function encryptJson(ring: KeyRing, value: unknown, aad: string): Envelope {
  const json: unknown = JSON.stringify(value);
  if (typeof json !== 'string') throw new CryptoError('malformed_envelope', 'Value cannot be serialised as JSON');
  return encrypt(ring, json, aad);
}

/** Returns the parsed JSON as `unknown`: callers validate it with their own schema. */
export function decryptJson(ring: KeyRing, envelope: unknown, aad: string): unknown {
  const text = decrypt(ring, envelope, aad).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CryptoError('malformed_envelope', 'Decrypted payload is not JSON');
  }
}

/** Encrypts text into the compact form `v1.kid.iv.tag.ct` for text columns. */
export function sealString(ring: KeyRing, text: string, aad: string): string {
  return toCompact(encrypt(ring, text, aad));
}

export function openString(ring: KeyRing, sealed: string, aad: string): string {
  return decrypt(ring, fromCompact(sealed), aad).toString('utf8');
}
