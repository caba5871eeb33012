import { TAG_BYTES } from '../crypto/stream-format.js';

/**
 * Where the records of an encrypted file (format BSF1, `shared/crypto/stream-format.ts`) lie in the stored object.
 * Every record but the last holds `chunkSize` plaintext bytes, the last 0..chunkSize; each adds a 16-byte tag.
 * Pure arithmetic, so a ranged download reads and decrypts only the records it needs.
 */
export interface ContentLayout {
  headerBytes: number;
  chunkSize: number;
  plainSize: number;
}

export interface RecordSpan {
  first: number;
  last: number;
  /** Inclusive byte range of those records in the object. */
  objectStart: number;
  objectEnd: number;
}

export function recordCount(layout: Pick<ContentLayout, 'chunkSize' | 'plainSize'>): number {
  return layout.plainSize === 0 ? 1 : Math.ceil(layout.plainSize / layout.chunkSize);
}

export function recordPlainLength(layout: ContentLayout, index: number): number {
  const count = recordCount(layout);
  if (index < count - 1) return layout.chunkSize;
  return layout.plainSize - (count - 1) * layout.chunkSize;
}

export function recordOffset(layout: ContentLayout, index: number): number {
  return layout.headerBytes + index * (layout.chunkSize + TAG_BYTES);
}

/** The exact size of the object: anything else is a truncated, extended or substituted object. */
export function objectSize(layout: ContentLayout): number {
  return layout.headerBytes + layout.plainSize + recordCount(layout) * TAG_BYTES;
}

/** The records holding plaintext bytes `start..end` (inclusive; both within the file), and where they lie. */
export function recordSpan(layout: ContentLayout, start: number, end: number): RecordSpan {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end >= Math.max(layout.plainSize, 1)) {
    throw new RangeError('byte range outside the file');
  }
  const first = Math.floor(start / layout.chunkSize);
  const last = layout.plainSize === 0 ? 0 : Math.floor(end / layout.chunkSize);
  return {
    first,
    last,
    objectStart: recordOffset(layout, first),
    objectEnd: recordOffset(layout, last) + recordPlainLength(layout, last) + TAG_BYTES - 1,
  };
}
