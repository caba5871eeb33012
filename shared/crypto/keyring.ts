import { createHash } from 'node:crypto';
import { CryptoError } from '../errors.js';

export const KEY_BYTES = 32;
const HEX_KEY = /^[0-9a-fA-F]{64}$/;
/** Key ids travel inside envelopes (`v1.kid.iv.tag.ct`) and AAD (`v1|kid|…`), so they must not contain separators. */
const KID = /^[A-Za-z0-9_-]{1,64}$/;

export type PreviousKey = { kid: string; key: Buffer };
export type KeyRingOptions = { current: Buffer; previous?: PreviousKey[] };

export function isValidKid(kid: unknown): kid is string {
  return typeof kid === 'string' && KID.test(kid);
}

/** 64 hex characters → 32-byte key. The message names the variable, never the value. */
export function parseHexKey(hex: string, variable: string): Buffer {
  if (typeof hex !== 'string' || !HEX_KEY.test(hex)) {
    throw new CryptoError('invalid_key', `${variable} must be exactly 64 hexadecimal characters (32 bytes)`);
  }
  return Buffer.from(hex, 'hex');
}

/** Deterministic public fingerprint of a key: first 16 hex chars of SHA-256("botserver-kid:" || key). */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('botserver-kid:').update(key).digest('hex').slice(0, 16);
}

/** Parses BOTSERVER_PREVIOUS_KEYS ("kid:hex,kid2:hex2"); errors name the entry's position, not its content. */
export function parsePreviousKeys(list: string): PreviousKey[] {
  const variable = 'BOTSERVER_PREVIOUS_KEYS';
  if (list.trim() === '') return [];
  return list.split(',').map((rawEntry, index) => {
    const entry = rawEntry.trim();
    const separator = entry.indexOf(':');
    const kid = separator < 0 ? '' : entry.slice(0, separator);
    const hex = separator < 0 ? '' : entry.slice(separator + 1);
    if (!isValidKid(kid) || !HEX_KEY.test(hex)) {
      throw new CryptoError(
        'invalid_key',
        `${variable} entry ${index + 1} must be "kid:hex" with kid of [A-Za-z0-9_-]{1,64} and 64 hexadecimal characters`,
      );
    }
    return { kid, key: Buffer.from(hex, 'hex') };
  });
}

function assertKeyLength(key: Buffer, what: string): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw new CryptoError('invalid_key', `${what} must be a ${KEY_BYTES}-byte Buffer`);
  }
}

/**
 * The current encryption key plus older keys kept for decryption. The ring takes ownership of the Buffers it is
 * given (no copies), so `zeroize()` wipes the very bytes that were parsed from configuration.
 */
export class KeyRing {
  readonly #currentKid: string;
  readonly #currentKey: Buffer;
  readonly #byKid = new Map<string, Buffer>();
  readonly #held: Buffer[] = [];
  #zeroized = false;

  constructor(options: KeyRingOptions) {
    assertKeyLength(options.current, 'current key');
    this.#currentKey = options.current;
    this.#currentKid = keyId(options.current);
    this.#index(this.#currentKid, options.current);
    (options.previous ?? []).forEach((previous, position) => {
      assertKeyLength(previous.key, `previous key ${position + 1}`);
      if (!isValidKid(previous.kid)) {
        throw new CryptoError('invalid_key', `previous key ${position + 1} has an invalid kid (allowed: [A-Za-z0-9_-]{1,64})`);
      }
      this.#index(previous.kid, previous.key);
      this.#index(keyId(previous.key), previous.key);
    });
  }

  get currentKid(): string {
    this.#assertUsable();
    return this.#currentKid;
  }

  get currentKey(): Buffer {
    this.#assertUsable();
    return this.#currentKey;
  }

  keyFor(kid: string): Buffer {
    this.#assertUsable();
    const key = this.#byKid.get(kid);
    if (key === undefined) throw new CryptoError('unknown_key', 'No key with this kid is in the key ring');
    return key;
  }

  /** Overwrites every held key with zeros; the ring refuses all further use. */
  zeroize(): void {
    for (const key of this.#held) key.fill(0);
    this.#byKid.clear();
    this.#zeroized = true;
  }

  get zeroized(): boolean {
    return this.#zeroized;
  }

  #index(kid: string, key: Buffer): void {
    const existing = this.#byKid.get(kid);
    // One kid naming two different keys would make decryption depend on configuration order.
    if (existing !== undefined && !existing.equals(key)) {
      throw new CryptoError('invalid_key', 'Two different keys share one kid in the key ring');
    }
    this.#byKid.set(kid, key);
    if (!this.#held.includes(key)) this.#held.push(key);
  }

  #assertUsable(): void {
    if (this.#zeroized) throw new CryptoError('invalid_key', 'The key ring has been zeroized');
  }
}
