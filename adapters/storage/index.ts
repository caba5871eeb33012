import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Config } from '../../shared/config/index.js';
import { LocalStorage } from './local.js';
import { S3Storage } from './s3.js';
import type { ByteRange, ObjectStorage } from './types.js';

export type { ByteRange, ObjectStorage } from './types.js';
export { StorageNotFoundError, StorageRangeError, StorageSourceError } from './errors.js';
export { LocalStorage } from './local.js';
export { S3Storage, type S3StorageOptions } from './s3.js';

/**
 * The object storage the configuration names: the S3 bucket when `S3_BUCKET` is set (with `S3_ENDPOINT` for an
 * S3-compatible server), else files under `<BOTSERVER_DATA_DIR>/files`. Call `ensureReady()` before first use.
 */
export function createStorage(config: Config): ObjectStorage {
  if (config.s3 !== undefined) {
    const { endpoint, bucket, region, accessKeyId, secretAccessKey } = config.s3;
    return new S3Storage({ endpoint, bucket, region, accessKeyId, secretAccessKey });
  }
  return new LocalStorage(join(config.dataDir, 'files'));
}

/** One stored object as a byte source for the file reader: ranged reads and its size (undefined when missing). */
export function objectSource(storage: ObjectStorage, key: string): { read(range?: ByteRange): Promise<Readable>; size(): Promise<number | undefined> } {
  return {
    read: (range) => storage.get(key, range),
    size: async () => (await storage.head(key))?.size,
  };
}
