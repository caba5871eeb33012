import { createCipheriv, createDecipheriv, hkdfSync } from 'node:crypto';
import { CryptoError } from '../errors.js';
import type { ByteQueue } from './byte-queue.js';
import { isValidKid } from './keyring.js';

/*
 * Streaming file AEAD, format "BSF1":
 *   header = "BSF1" | kidLength (1 byte) | kid (ASCII) | salt (32) | noncePrefix (8) | chunkSize (uint32 BE)
 *   then records, each = AES-256-GCM(ciphertext) | tag (16), under fileKey = HKDF-SHA256(ringKey, salt, info).
 * Every record but the last carries exactly chunkSize plaintext bytes; the last carries 0..chunkSize bytes, so an
 * empty file is one empty final record. Nonce = noncePrefix | uint32 BE record counter (stops reordering).
 * AAD = header | final flag (1 byte) | caller AAD: the final flag stops truncation at a record boundary, the
 * header binds every record to this file's parameters.
 */
export const MAGIC = Buffer.from('BSF1', 'ascii');
export const SALT_BYTES = 32;
export const NONCE_PREFIX_BYTES = 8;
export const TAG_BYTES = 16;
export const DEFAULT_CHUNK_SIZE = 64 * 1024;
/** Upper bound the decrypter accepts from a header, so a forged header cannot make it buffer gigabytes. */
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;
const MAX_RECORDS = 2 ** 32;
export const FIXED_HEADER_BYTES = MAGIC.length + 1 + SALT_BYTES + NONCE_PREFIX_BYTES + 4;

export type StreamHeader = { kid: string; salt: Buffer; noncePrefix: Buffer; chunkSize: number };

function malformedHeader(reason: string): CryptoError {
  return new CryptoError('malformed_envelope', `Malformed encrypted file header: ${reason}`);
}

export function assertChunkSize(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) {
    throw new RangeError(`chunkSize must be an integer between 1 and ${MAX_CHUNK_SIZE}`);
  }
}

export function encodeHeader(header: StreamHeader): Buffer {
  const kid = Buffer.from(header.kid, 'ascii');
  const chunkSize = Buffer.alloc(4);
  chunkSize.writeUInt32BE(header.chunkSize);
  return Buffer.concat([MAGIC, Buffer.from([kid.length]), kid, header.salt, header.noncePrefix, chunkSize]);
}

/** Reads the header from the front of the queue once it is complete; undefined while more bytes are needed. */
export function takeHeader(queue: ByteQueue): { header: StreamHeader; bytes: Buffer } | undefined {
  if (queue.length < MAGIC.length + 1) return undefined;
  const start = queue.peek(MAGIC.length + 1);
  if (!start.subarray(0, MAGIC.length).equals(MAGIC)) throw malformedHeader('unknown format');
  const kidLength = start[MAGIC.length] ?? 0;
  if (queue.length < FIXED_HEADER_BYTES + kidLength) return undefined;
  const bytes = queue.take(FIXED_HEADER_BYTES + kidLength);
  let offset = MAGIC.length + 1;
  const kid = bytes.subarray(offset, offset + kidLength).toString('latin1');
  offset += kidLength;
  const salt = bytes.subarray(offset, offset + SALT_BYTES);
  offset += SALT_BYTES;
  const noncePrefix = bytes.subarray(offset, offset + NONCE_PREFIX_BYTES);
  offset += NONCE_PREFIX_BYTES;
  const chunkSize = bytes.readUInt32BE(offset);
  if (!isValidKid(kid)) throw malformedHeader('invalid kid');
  if (chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE) throw malformedHeader('chunk size out of range');
  return { header: { kid, salt, noncePrefix, chunkSize }, bytes };
}

export function deriveFileKey(ringKey: Buffer, header: StreamHeader): Buffer {
  return Buffer.from(hkdfSync('sha256', ringKey, header.salt, `botserver-file-v1|${header.kid}`, 32));
}

/** Per-file record sealing/opening state: key, nonce counter and the AAD prefix. */
export class RecordCipher {
  readonly #key: Buffer;
  readonly #noncePrefix: Buffer;
  readonly #aadPrefix: Buffer;
  readonly #aad: Buffer;
  #counter = 0;

  constructor(key: Buffer, header: StreamHeader, headerBytes: Buffer, aad: string) {
    this.#key = key;
    this.#noncePrefix = header.noncePrefix;
    this.#aadPrefix = headerBytes;
    this.#aad = Buffer.from(aad, 'utf8');
  }

  seal(plaintext: Buffer, final: boolean): Buffer {
    const cipher = createCipheriv('aes-256-gcm', this.#key, this.#nextNonce(), { authTagLength: TAG_BYTES });
    cipher.setAAD(this.#recordAad(final));
    // Evaluated left to right: the tag exists only after final().
    return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
  }

  open(record: Buffer, final: boolean): Buffer {
    if (record.length < TAG_BYTES) throw decryptFailed();
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, this.#nextNonce(), { authTagLength: TAG_BYTES });
      decipher.setAAD(this.#recordAad(final));
      decipher.setAuthTag(record.subarray(record.length - TAG_BYTES));
      const head = decipher.update(record.subarray(0, record.length - TAG_BYTES));
      const tail = decipher.final();
      return tail.length === 0 ? head : Buffer.concat([head, tail]);
    } catch {
      throw decryptFailed();
    }
  }

  /** Opens the record at `index` out of order (ranged reads); the sequential counter is left alone. */
  openAt(record: Buffer, index: number, final: boolean): Buffer {
    if (record.length < TAG_BYTES) throw decryptFailed();
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, this.#nonce(index), { authTagLength: TAG_BYTES });
      decipher.setAAD(this.#recordAad(final));
      decipher.setAuthTag(record.subarray(record.length - TAG_BYTES));
      const head = decipher.update(record.subarray(0, record.length - TAG_BYTES));
      const tail = decipher.final();
      return tail.length === 0 ? head : Buffer.concat([head, tail]);
    } catch {
      throw decryptFailed();
    }
  }

  zeroize(): void {
    this.#key.fill(0);
  }

  #nextNonce(): Buffer {
    const nonce = this.#nonce(this.#counter);
    this.#counter += 1;
    return nonce;
  }

  #nonce(index: number): Buffer {
    if (!Number.isInteger(index) || index < 0 || index >= MAX_RECORDS) throw new CryptoError('decrypt_failed', 'Encrypted file has too many records');
    const nonce = Buffer.alloc(NONCE_PREFIX_BYTES + 4);
    this.#noncePrefix.copy(nonce, 0);
    nonce.writeUInt32BE(index, NONCE_PREFIX_BYTES);
    return nonce;
  }

  #recordAad(final: boolean): Buffer {
    return Buffer.concat([this.#aadPrefix, Buffer.from([final ? 1 : 0]), this.#aad]);
  }
}

export function decryptFailed(reason = 'wrong key, wrong associated data, or tampered or truncated data'): CryptoError {
  return new CryptoError('decrypt_failed', `File decryption failed: ${reason}`);
}
