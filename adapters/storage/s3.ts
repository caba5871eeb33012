import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  PutBucketVersioningCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
  type BucketLocationConstraint,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { UnavailableError } from '../../shared/errors.js';
import { CONNECTION_CODES } from '../../shared/failures.js';
import { StorageNotFoundError, StorageRangeError } from './errors.js';
import { checkRange, keySegments } from './keys.js';
import { PartBuffers } from './partBuffers.js';
import { readExactly } from './readExactly.js';
import type { ByteRange, ObjectStorage } from './types.js';

export interface S3StorageOptions {
  /** Unset: AWS itself (virtual-hosted style). Set: any S3-compatible server, addressed path-style. */
  endpoint?: string | undefined;
  bucket: string;
  region: string;
  /** Both unset: the SDK's default credential chain (instance role, profile, …). */
  accessKeyId?: string | undefined;
  secretAccessKey?: string | undefined;
}

/**
 * Multipart: parts of PART_SIZE (S3's smallest), at most PARTS_IN_FLIGHT of them read and sent at once across all
 * the storage's uploads, each from a reused buffer: 15 MiB in all, whatever the number and size of the files.
 */
const PART_SIZE = 5 * 1024 * 1024;
const PARTS_IN_FLIGHT = 3;
/** S3's limit; a file over MAX_PARTS × PART_SIZE (48.8 GiB) is sent in larger parts, read into buffers of their own. */
const MAX_PARTS = 10_000;
const CONNECTION_TIMEOUT_MS = 5_000;
/** A socket with no traffic for this long fails the request (also a GET body whose reader stalls that long). */
const SOCKET_IDLE_TIMEOUT_MS = 120_000;

/** Listing and deleting again when versions remain (a concurrent put, a lost reply). */
const DELETE_ROUNDS = 3;

const UNAVAILABLE_NAMES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeoutException', 'ServiceUnavailable', 'SlowDown', 'InternalError']);

function statusOf(error: unknown): number | undefined {
  return error instanceof S3ServiceException ? error.$metadata.httpStatusCode : undefined;
}

function isNotFound(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  return error.name === 'NoSuchKey' || error.name === 'NotFound' || (statusOf(error) === 404 && error.name !== 'NoSuchBucket');
}

/** A connection that could not be made or broke, a timeout, or the server saying it cannot serve now. */
function isUnavailable(error: unknown, depth = 0): boolean {
  if (!(error instanceof Error) || depth > 4) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return true;
  if (UNAVAILABLE_NAMES.has(error.name)) return true;
  const status = statusOf(error);
  if (status === 502 || status === 503 || status === 504) return true;
  if (error instanceof AggregateError && error.errors.some((inner) => isUnavailable(inner, depth + 1))) return true;
  return isUnavailable(error.cause, depth + 1);
}

/** Connection failures become UnavailableError (503); everything else is rethrown as it is. */
function translate(error: unknown, what: string): unknown {
  if (error instanceof UnavailableError || !isUnavailable(error)) return error;
  return new UnavailableError(`Object storage is not reachable (${what})`, error);
}

/**
 * Objects in one S3 bucket (AWS, or any S3-compatible server such as Swift's s3api or MinIO). The bucket keeps
 * versions (turned on by `ensureReady`), so an overwritten or deleted object can be recovered by an operator until
 * `delete` removes every version of it. Objects are stored with SSE `AES256` on top of the pipeline's own encryption.
 */
export class S3Storage implements ObjectStorage {
  readonly kind = 's3' as const;
  readonly bucket: string;
  private readonly region: string;
  private readonly client: S3Client;
  private readonly partBuffers = new PartBuffers(PARTS_IN_FLIGHT, PART_SIZE);

  constructor(options: S3StorageOptions) {
    this.bucket = options.bucket;
    this.region = options.region;
    const config: S3ClientConfig = {
      region: options.region,
      // Non-AWS servers reject the SDK's default CRC checksums on streamed bodies or omit them on reads.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: CONNECTION_TIMEOUT_MS, socketTimeout: SOCKET_IDLE_TIMEOUT_MS },
    };
    if (options.endpoint !== undefined) {
      config.endpoint = options.endpoint;
      config.forcePathStyle = true;
    }
    if (options.accessKeyId !== undefined && options.secretAccessKey !== undefined) {
      config.credentials = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey };
    }
    this.client = new S3Client(config);
  }

  async ensureReady(): Promise<void> {
    try {
      if (!(await this.bucketExists())) {
        try {
          await this.client.send(
            new CreateBucketCommand({
              Bucket: this.bucket,
              ...(this.region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: this.region as BucketLocationConstraint } }),
            }),
          );
        } catch (error) {
          // Another process created it between our HEAD and our PUT.
          if (!(error instanceof Error && error.name === 'BucketAlreadyOwnedByYou')) throw error;
        }
      }
      await this.client.send(new PutBucketVersioningCommand({ Bucket: this.bucket, VersioningConfiguration: { Status: 'Enabled' } }));
    } catch (error) {
      throw translate(error, 'ensureReady');
    }
  }

  private async bucketExists(): Promise<boolean> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return true;
    } catch (error) {
      if (error instanceof Error && (error.name === 'NotFound' || error.name === 'NoSuchBucket' || statusOf(error) === 404)) return false;
      throw error;
    }
  }

  /**
   * One PUT up to one part, else a multipart upload whose parts are read from the file into shared part buffers
   * (memory stays bounded: no stream buffering, no garbage growing with the file). A failed part, a file shorter
   * than `size` or a failed completion aborts the multipart upload (its parts removed) once every part in flight has
   * settled, then rejects: no object appears under the key.
   */
  async putFile(key: string, path: string, size: number): Promise<void> {
    const objectKey = keySegments(key).join('/');
    await this.abortUnfinishedUploads(objectKey);
    const file = await open(path, 'r');
    try {
      if (size <= PART_SIZE) await this.putSinglePart(objectKey, file, size);
      else await this.putMultipart(objectKey, file, size);
    } catch (error) {
      throw translate(error, 'put');
    } finally {
      await file.close();
    }
  }

  private async putSinglePart(objectKey: string, file: FileHandle, size: number): Promise<void> {
    const buffer = await this.partBuffers.acquire();
    try {
      const body = await readExactly(file, buffer, size, 0);
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: body, ContentLength: size, ServerSideEncryption: 'AES256' }));
    } finally {
      this.partBuffers.release(buffer);
    }
  }

  private async putMultipart(objectKey: string, file: FileHandle, size: number): Promise<void> {
    const partSize = Math.max(PART_SIZE, Math.ceil(size / MAX_PARTS));
    const partCount = Math.ceil(size / partSize);
    const created = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, ServerSideEncryption: 'AES256' }));
    const uploadId = created.UploadId;
    if (uploadId === undefined) throw new Error('The S3 server started a multipart upload without an upload id');
    const etags: string[] = [];
    let nextPart = 0;
    let failed = false;
    const sendParts = async (): Promise<void> => {
      while (!failed && nextPart < partCount) {
        const index = nextPart;
        nextPart += 1;
        const start = index * partSize;
        const length = Math.min(partSize, size - start);
        const pooled = partSize <= this.partBuffers.size;
        const buffer = pooled ? await this.partBuffers.acquire() : Buffer.allocUnsafeSlow(partSize);
        try {
          const body = await readExactly(file, buffer, length, start);
          const part = await this.client.send(
            new UploadPartCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId, PartNumber: index + 1, Body: body, ContentLength: length }),
          );
          if (part.ETag === undefined) throw new Error('The S3 server accepted a part without an ETag');
          etags[index] = part.ETag;
        } catch (error) {
          failed = true;
          throw error;
        } finally {
          if (pooled) this.partBuffers.release(buffer);
        }
      }
    };
    try {
      const settled = await Promise.allSettled(Array.from({ length: Math.min(PARTS_IN_FLIGHT, partCount) }, sendParts));
      const rejected = settled.find((result) => result.status === 'rejected');
      if (rejected !== undefined) throw rejected.reason;
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          UploadId: uploadId,
          MultipartUpload: { Parts: etags.map((etag, index) => ({ ETag: etag, PartNumber: index + 1 })) },
        }),
      );
    } catch (error) {
      // Best effort: a part left behind by a failed abort is aborted by the next put of the key.
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId })).catch(() => undefined);
      throw error;
    }
  }

  /**
   * A put of this key that a crash interrupted left a multipart upload whose parts the server keeps (and bills);
   * one job writes a key at a time, so any unfinished upload of the key is stale and is aborted first.
   */
  private async abortUnfinishedUploads(objectKey: string): Promise<void> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      for (;;) {
        const page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: objectKey, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        for (const upload of page.Uploads ?? []) {
          if (upload.Key !== objectKey || upload.UploadId === undefined) continue;
          await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: upload.UploadId }));
        }
        if (page.IsTruncated !== true) return;
        keyMarker = page.NextKeyMarker;
        uploadIdMarker = page.NextUploadIdMarker;
      }
    } catch (error) {
      throw translate(error, 'put');
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const objectKey = keySegments(key).join('/');
    if (range !== undefined) checkRange(range);
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, ...(range === undefined ? {} : { Range: `bytes=${range.start}-${range.end}` }) }),
      );
      const body = response.Body;
      if (body === undefined) return Readable.from([]);
      if (body instanceof Readable) return body;
      throw new Error('The S3 client returned a body that is not a Node stream');
    } catch (error) {
      if (isNotFound(error)) throw new StorageNotFoundError();
      if (error instanceof Error && (error.name === 'InvalidRange' || statusOf(error) === 416)) throw new StorageRangeError();
      throw translate(error, 'get');
    }
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    const objectKey = keySegments(key).join('/');
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      return { size: response.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw translate(error, 'head');
    }
  }

  /**
   * Removes every version and delete marker of exactly this key (not of keys that merely start with it), then lists
   * again to be sure. A 404 on one version's DELETE is taken as "already gone" and checked by that second listing:
   * Swift 2.30's s3api answers 404 NoSuchBucket when it deletes the last version of a key while the bucket holds
   * other objects, although the version is gone and the bucket is there.
   */
  async delete(key: string): Promise<void> {
    const objectKey = keySegments(key).join('/');
    try {
      for (let round = 0; round < DELETE_ROUNDS; round += 1) {
        const versionIds = await this.versionsOf(objectKey);
        if (versionIds.length === 0) return;
        for (const versionId of versionIds) {
          try {
            await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey, VersionId: versionId }));
          } catch (error) {
            if (statusOf(error) !== 404) throw error;
          }
        }
      }
      if ((await this.versionsOf(objectKey)).length > 0) throw new Error(`Versions of a stored object remain after ${DELETE_ROUNDS} rounds of deletes`);
    } catch (error) {
      throw translate(error, 'delete');
    }
  }

  /** Version ids of every version and delete marker of exactly `objectKey`. */
  private async versionsOf(objectKey: string): Promise<string[]> {
    const ids: string[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (;;) {
      const page = await this.client.send(
        new ListObjectVersionsCommand({ Bucket: this.bucket, Prefix: objectKey, KeyMarker: keyMarker, VersionIdMarker: versionIdMarker }),
      );
      for (const entry of [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])]) {
        if (entry.Key === objectKey && entry.VersionId !== undefined) ids.push(entry.VersionId);
      }
      if (page.IsTruncated !== true) return ids;
      // A page that does not move the markers on would loop for ever.
      if (page.NextKeyMarker === keyMarker && page.NextVersionIdMarker === versionIdMarker) return ids;
      keyMarker = page.NextKeyMarker;
      versionIdMarker = page.NextVersionIdMarker;
    }
  }

  close(): Promise<void> {
    this.client.destroy();
    return Promise.resolve();
  }
}
