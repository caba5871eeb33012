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
   * Streams `body` to `key`, replacing any earlier object; resolves only once the object is complete and durable.
   * A body that errors leaves no (partial) object under `key`. Memory stays bounded whatever the body's size.
   */
  put(key: string, body: Readable): Promise<void>;
  /** The object's bytes, whole or only `range`; throws `StorageNotFoundError` when there is no such object. */
  get(key: string, range?: ByteRange): Promise<Readable>;
  /** The object's size in bytes, or undefined when there is none. */
  head(key: string): Promise<{ size: number } | undefined>;
  /** Removes the object and, where the backend keeps versions, every version of it. Idempotent. */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}
