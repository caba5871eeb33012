import type { Readable } from 'node:stream';

/** An inclusive byte range of a stored object, as in HTTP `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/**
 * Where encrypted file objects live. Implementations store opaque bytes (the file pipeline encrypts before `put`
 * and decrypts after `get`): S3 (or any S3-compatible server) and, as the built-in default, a local folder.
 * Keys are server-made (`tenantId/fileId`), never a user's file name.
 */
export interface ObjectStorage {
  readonly kind: 's3' | 'local';
  /** Creates what the backend needs once (bucket with versioning, or the root folder); safe to call repeatedly. */
  ensureReady(): Promise<void>;
  /**
   * Stores the first `size` bytes of the file at `path` under `key`, replacing any earlier object; resolves only once
   * the object is complete and durable. A file shorter than `size` rejects with StorageSourceError, and a failure of
   * any kind leaves no (partial) object under `key` and the earlier object as it was. Memory stays bounded whatever
   * the size. (A file, not a stream: its parts can be read again, so a part is retried without holding the stream.)
   */
  putFile(key: string, path: string, size: number): Promise<void>;
  /** The object's bytes, whole or only `range`; throws `StorageNotFoundError` when there is no such object. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** The object's size in bytes, or undefined when there is none. */
  head(key: string): Promise<{ size: number } | undefined>;
  /** Removes the object and, where the backend keeps versions, every version of it. Idempotent. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}
