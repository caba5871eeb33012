import type { Readable } from 'node:stream';
import { ByteQueue } from '../crypto/byte-queue.js';
import type { KeyRing } from '../crypto/index.js';
import { FIXED_HEADER_BYTES, RecordCipher, TAG_BYTES, deriveFileKey, takeHeader } from '../crypto/stream-format.js';
import { AppError } from '../errors.js';
import { contentAad } from './aad.js';
import { dataKeyRing } from './dataKey.js';
import { objectSize, recordCount, recordPlainLength, recordSpan, type ContentLayout } from './layout.js';
import type { FileRow } from './repository.js';

/** Longest header a BSF1 object can have (a 64-character kid). */
const MAX_HEADER_BYTES = FIXED_HEADER_BYTES + 64;

/** A stored file whose bytes do not authenticate: altered, cut, reordered, swapped or under the wrong key. */
export class FileIntegrityError extends AppError {
  constructor(reason: string) {
    super('file_integrity', `The stored file failed its integrity check (${reason})`, { status: 500, expose: false });
  }
}

/** How the file pipeline reads an object, whatever the backend (S3 or the local folder). */
export interface ObjectSource {
  read(range?: { start: number; end: number }): Promise<Readable>;
  size(): Promise<number | undefined>;
}

async function readAll(stream: Readable, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let length = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    parts.push(chunk);
    length += chunk.length;
    if (length >= limit) break;
  }
  stream.destroy();
  return Buffer.concat(parts).subarray(0, limit);
}

/**
 * An encrypted file opened for reading: its header parsed and its size checked against what was stored, so a
 * truncated, extended or substituted object is refused before a byte of plaintext exists. Records are then
 * decrypted one at a time (each verified by its GCM tag, its index in the nonce and the final flag in its AAD), so
 * memory stays at one record whatever the file's size.
 */
export class OpenedContent {
  readonly layout: ContentLayout;
  readonly #cipher: RecordCipher;
  readonly #source: ObjectSource;
  readonly #ring: KeyRing;

  private constructor(layout: ContentLayout, cipher: RecordCipher, source: ObjectSource, ring: KeyRing) {
    this.layout = layout;
    this.#cipher = cipher;
    this.#source = source;
    this.#ring = ring;
  }

  static async open(master: KeyRing, row: Pick<FileRow, 'id' | 'size' | 'wrapped_key' | 'chunk_size'>, source: ObjectSource): Promise<OpenedContent> {
    if (row.wrapped_key === null || row.chunk_size === null) throw new FileIntegrityError('no data key recorded');
    let ring: KeyRing;
    try {
      ring = dataKeyRing(master, row.id, row.wrapped_key);
    } catch {
      throw new FileIntegrityError('the data key does not unwrap');
    }
    try {
      const queue = new ByteQueue();
      queue.push(await readAll(await source.read({ start: 0, end: MAX_HEADER_BYTES - 1 }), MAX_HEADER_BYTES));
      const parsed = takeHeader(queue);
      if (parsed === undefined) throw new FileIntegrityError('header cut short');
      if (parsed.header.chunkSize !== row.chunk_size) throw new FileIntegrityError('unexpected chunk size');
      const layout: ContentLayout = { headerBytes: parsed.bytes.length, chunkSize: parsed.header.chunkSize, plainSize: Number(row.size) };
      const actual = await source.size();
      if (actual !== objectSize(layout)) throw new FileIntegrityError('object size does not match');
      const key = deriveFileKey(ring.keyFor(parsed.header.kid), parsed.header);
      return new OpenedContent(layout, new RecordCipher(key, parsed.header, parsed.bytes, contentAad(row.id)), source, ring);
    } catch (error) {
      ring.zeroize();
      throw error instanceof FileIntegrityError ? error : new FileIntegrityError('header or key does not authenticate');
    }
  }

  /** Plaintext bytes `start..end` (inclusive), decrypting only the records that hold them. */
  async *range(start: number, end: number): AsyncGenerator<Buffer> {
    const span = recordSpan(this.layout, start, end);
    const { chunkSize } = this.layout;
    let index = span.first;
    const queue = new ByteQueue();
    const stream = await this.#source.read({ start: span.objectStart, end: span.objectEnd });
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        queue.push(chunk);
        while (index <= span.last && queue.length >= recordPlainLength(this.layout, index) + TAG_BYTES) {
          const plain = this.#openRecord(queue.take(recordPlainLength(this.layout, index) + TAG_BYTES), index);
          const from = index === span.first ? start - index * chunkSize : 0;
          const to = index === span.last ? end - index * chunkSize + 1 : plain.length;
          index += 1;
          if (to > from) yield plain.subarray(from, to);
        }
      }
    } finally {
      stream.destroy();
    }
    if (index <= span.last || queue.length > 0) throw new FileIntegrityError('object cut short');
  }

  /** Authenticates the records holding `start..end` without releasing any plaintext. */
  async verify(start: number, end: number): Promise<void> {
    for await (const piece of this.range(start, end)) piece.fill(0);
  }

  close(): void {
    this.#cipher.zeroize();
    this.#ring.zeroize();
  }

  #openRecord(record: Buffer, index: number): Buffer {
    try {
      return this.#cipher.openAt(record, index, index === recordCount(this.layout) - 1);
    } catch {
      throw new FileIntegrityError(`record ${index} does not authenticate`);
    }
  }
}
