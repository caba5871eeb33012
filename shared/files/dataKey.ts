import { randomBytes } from 'node:crypto';
import { KeyRing, decrypt, encrypt } from '../crypto/index.js';
import { fromCompact, toCompact } from '../crypto/envelope-format.js';
import { dataKeyAad } from './aad.js';

/** A fresh 256-bit data key for one file. */
export function newDataKey(): Buffer {
  return randomBytes(32);
}

/**
 * Wraps a file's data key under the master ring (BOTSERVER_ENCRYPTION_KEY): a compact envelope that names the
 * master key's id, so after a rotation old files still open (previous keys) and can be re-wrapped without touching
 * their content.
 */
export function wrapDataKey(master: KeyRing, fileId: string, dataKey: Buffer): string {
  return toCompact(encrypt(master, dataKey, dataKeyAad(fileId)));
}

/** A one-key ring holding the file's unwrapped data key; zeroize it when done. */
export function dataKeyRing(master: KeyRing, fileId: string, wrapped: string): KeyRing {
  return new KeyRing({ current: decrypt(master, fromCompact(wrapped), dataKeyAad(fileId)) });
}
