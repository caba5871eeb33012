import { randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CryptoError } from '../errors.js';
import { ByteQueue } from './byte-queue.js';
import type { KeyRing } from './keyring.js';
import {
  DEFAULT_CHUNK_SIZE,
  NONCE_PREFIX_BYTES,
  RecordCipher,
  SALT_BYTES,
  TAG_BYTES,
  assertChunkSize,
  decryptFailed,
  deriveFileKey,
  encodeHeader,
  takeHeader,
} from './stream-format.js';

export type EncryptStreamOptions = { chunkSize?: number };

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  throw new TypeError('Encrypted streams accept only bytes or strings');
}

function asCryptoError(error: unknown): Error {
  return error instanceof CryptoError || error instanceof TypeError ? error : decryptFailed();
}

class EncryptStream extends Transform {
  readonly #queue = new ByteQueue();
  readonly #cipher: RecordCipher;
  readonly #chunkSize: number;
  #header: Buffer | undefined;

  constructor(ring: KeyRing, aad: string, chunkSize: number) {
    super();
    const header = { kid: ring.currentKid, salt: randomBytes(SALT_BYTES), noncePrefix: randomBytes(NONCE_PREFIX_BYTES), chunkSize };
    this.#header = encodeHeader(header);
    this.#cipher = new RecordCipher(deriveFileKey(ring.currentKey, header), header, this.#header, aad);
    this.#chunkSize = chunkSize;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#emitHeader();
      this.#queue.push(toBuffer(chunk));
      // Strictly greater: a full chunk may turn out to be the final one, which is sealed differently.
      const sealed: Buffer[] = [];
      while (this.#queue.length > this.#chunkSize) sealed.push(this.#cipher.seal(this.#queue.take(this.#chunkSize), false));
      // One push per write, not per record: large writes of small records cost far less stream bookkeeping.
      if (sealed.length > 0) this.push(sealed.length === 1 ? sealed[0] : Buffer.concat(sealed));
      callback();
    } catch (error) {
      callback(asCryptoError(error));
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#emitHeader();
      this.push(this.#cipher.seal(this.#queue.take(this.#queue.length), true));
      this.#cipher.zeroize();
      callback();
    } catch (error) {
      callback(asCryptoError(error));
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#cipher.zeroize();
    callback(error);
  }

  #emitHeader(): void {
    if (this.#header === undefined) return;
    this.push(this.#header);
    this.#header = undefined;
  }
}

class DecryptStream extends Transform {
  readonly #queue = new ByteQueue();
  readonly #ring: KeyRing;
  readonly #aad: string;
  #cipher: RecordCipher | undefined;
  #recordSize = 0;

  constructor(ring: KeyRing, aad: string) {
    super();
    this.#ring = ring;
    this.#aad = aad;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#queue.push(toBuffer(chunk));
      const cipher = this.#cipher ?? this.#readHeader();
      if (cipher !== undefined) {
        // Hold back the last full record until more data arrives: only the end of input says it is final.
        const opened: Buffer[] = [];
        while (this.#queue.length > this.#recordSize) opened.push(cipher.open(this.#queue.take(this.#recordSize), false));
        if (opened.length > 0) this.push(opened.length === 1 ? opened[0] : Buffer.concat(opened));
      }
      callback();
    } catch (error) {
      callback(asCryptoError(error));
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.#cipher === undefined) throw decryptFailed('input ended before the header was complete');
      this.push(this.#cipher.open(this.#queue.take(this.#queue.length), true));
      this.#cipher.zeroize();
      callback();
    } catch (error) {
      callback(asCryptoError(error));
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#cipher?.zeroize();
    callback(error);
  }

  #readHeader(): RecordCipher | undefined {
    const parsed = takeHeader(this.#queue);
    if (parsed === undefined) return undefined;
    const ringKey = this.#ring.keyFor(parsed.header.kid);
    this.#cipher = new RecordCipher(deriveFileKey(ringKey, parsed.header), parsed.header, parsed.bytes, this.#aad);
    this.#recordSize = parsed.header.chunkSize + TAG_BYTES;
    return this.#cipher;
  }
}

/**
 * Encrypts a byte stream under the ring's current key. Output: header, then one record per chunk. The ring is read
 * when the stream is created, so a zeroized ring throws here, synchronously.
 */
export function createEncryptStream(ring: KeyRing, aad: string, options: EncryptStreamOptions = {}): Transform {
  const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  assertChunkSize(chunkSize);
  return new EncryptStream(ring, aad, chunkSize);
}

/**
 * Decrypts a stream made by `createEncryptStream`. Each record is released only after its tag verifies, but the
 * whole file is authentic only when the stream ends without error: consumers must discard partial output on error
 * (write to a temporary file, rename on success).
 */
export function createDecryptStream(ring: KeyRing, aad: string): Transform {
  return new DecryptStream(ring, aad);
}
