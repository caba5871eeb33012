/**
 * The object storage adapters, the same cases against both backends: LocalStorage in a fresh temp folder, and
 * S3Storage against the real S3-compatible server of the tests (Swift with s3api, `scripts/services.sh --s3`), in a
 * fresh versioned bucket that is emptied and removed afterwards.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { expect } from 'chai';
import {
  LocalStorage,
  S3Storage,
  StorageNotFoundError,
  StorageRangeError,
  StorageSourceError,
  createStorage,
  type ObjectStorage,
} from '../../adapters/storage/index.js';
import { UnavailableError, ValidationError } from '../../shared/errors.js';
import { freshDataDir, testConfig } from '../helpers/config.js';
import { requireS3, type S3TestSettings } from '../helpers/s3.js';

const KIB = 1024;
const MIB = 1024 * KIB;
/** Above S3Storage's 5 MiB part size: a multipart upload of four parts. */
const LARGE = 20 * MIB;
const sourceDir = join(freshDataDir(), 'sources');
mkdirSync(sourceDir, { recursive: true });

/** `data` written to a new temp file, as the files worker finds a staged file. */
function fileOf(data: Buffer): string {
  const path = join(sourceDir, `source-${randomBytes(6).toString('hex')}`);
  writeFileSync(path, data);
  return path;
}

/** Stores `data` through `putFile`, from a temp file of exactly its bytes. */
function putBytes(storage: ObjectStorage, key: string, data: Buffer): Promise<void> {
  return storage.putFile(key, fileOf(data), data.length);
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

function rawClient(settings: S3TestSettings): S3Client {
  return new S3Client({
    endpoint: settings.endpoint,
    region: settings.region,
    forcePathStyle: true,
    credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** Every version and delete marker of exactly `key`. */
async function versionsOf(client: S3Client, bucket: string, key: string): Promise<string[]> {
  const page = await client.send(new ListObjectVersionsCommand({ Bucket: bucket, Prefix: key }));
  return [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])].filter((entry) => entry.Key === key).map((entry) => entry.VersionId ?? '');
}

/**
 * Removes every version, delete marker and unfinished upload in the bucket, then the bucket. A 404 on a version's
 * DELETE is ignored: Swift answers NoSuchBucket when it deletes the last version of a key in a bucket that still
 * holds other keys (the version is gone all the same); the next listing shows what is left.
 */
async function dropBucket(client: S3Client, bucket: string): Promise<void> {
  for (let round = 0; ; round += 1) {
    const page = await client.send(new ListObjectVersionsCommand({ Bucket: bucket }));
    const entries = [...(page.Versions ?? []), ...(page.DeleteMarkers ?? [])];
    if (entries.length === 0) break;
    if (round === 5) throw new Error(`bucket ${bucket} still holds ${entries.length} versions`);
    for (const entry of entries) {
      await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: entry.Key, VersionId: entry.VersionId })).catch((error: unknown) => {
        if ((error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 404) throw error;
      });
    }
  }
  const uploads = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const upload of uploads.Uploads ?? []) {
    await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }));
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}

interface Backend {
  storage: ObjectStorage;
  /** S3 only: the raw client and bucket, to look behind the adapter. */
  s3?: { client: S3Client; bucket: string };
  /** Local only: the root folder. */
  root?: string;
}

for (const kind of ['local', 's3'] as const) {
  describe(`object storage: ${kind}`, function () {
    this.timeout(30_000);
    let backend: Backend;
    const tenant = `tenant-${randomBytes(4).toString('hex')}`;
    const keyOf = (name: string): string => `${tenant}/${name}`;

    before(async function () {
      if (kind === 'local') {
        const root = join(freshDataDir(), 'files');
        backend = { storage: new LocalStorage(root), root };
      } else {
        const settings = requireS3(this, 'storage');
        const storage = new S3Storage(settings);
        backend = { storage, s3: { client: rawClient(settings), bucket: settings.bucket } };
      }
      await backend.storage.ensureReady();
      await backend.storage.ensureReady(); // idempotent
    });

    after(async function () {
      if (backend === undefined) return;
      await backend.storage.close();
      if (backend.s3 !== undefined) {
        await dropBucket(backend.s3.client, backend.s3.bucket);
        backend.s3.client.destroy();
      }
    });

    if (kind === 's3') {
      it('turns versioning on for its bucket', async function () {
        const s3 = backend.s3!;
        const versioning = await s3.client.send(new GetBucketVersioningCommand({ Bucket: s3.bucket }));
        expect(versioning.Status).to.equal('Enabled');
      });
    }

    for (const size of [0, 1, 64 * KIB - 1, 64 * KIB, 64 * KIB + 1, LARGE]) {
      it(`round-trips ${size} bytes`, async function () {
        const data = randomBytes(size);
        const key = keyOf(`size-${size}`);
        await putBytes(backend.storage, key, data);
        expect(await backend.storage.head(key)).to.deep.equal({ size });
        const back = await readAll(await backend.storage.get(key));
        expect(back.length).to.equal(size);
        expect(sha256(back)).to.equal(sha256(data));
        if (size === LARGE && backend.s3 !== undefined) {
          // Stored by a multipart upload of four 5 MiB parts (S3-style ETag "<md5>-4").
          const head = await backend.s3.client.send(new HeadObjectCommand({ Bucket: backend.s3.bucket, Key: key }));
          expect(head.ETag).to.match(/-4"$/);
        }
      });
    }

    it('replaces an object on a second put', async function () {
      const key = keyOf('replaced');
      await putBytes(backend.storage, key, Buffer.from('first version'));
      await putBytes(backend.storage, key, Buffer.from('second'));
      expect((await readAll(await backend.storage.get(key))).toString()).to.equal('second');
      expect(await backend.storage.head(key)).to.deep.equal({ size: 6 });
    });

    it('reads a byte range, also across a part boundary of a large object', async function () {
      const small = randomBytes(1000);
      const key = keyOf('ranged');
      await putBytes(backend.storage, key, small);
      expect(await readAll(await backend.storage.get(key, { start: 10, end: 19 }))).to.deep.equal(small.subarray(10, 20));
      expect(await readAll(await backend.storage.get(key, { start: 0, end: 0 }))).to.deep.equal(small.subarray(0, 1));
      // An end past the object is cut at its last byte, as HTTP does.
      expect(await readAll(await backend.storage.get(key, { start: 990, end: 5000 }))).to.deep.equal(small.subarray(990));
      expect(await rejection(backend.storage.get(key, { start: 1000, end: 1010 }))).to.be.instanceOf(StorageRangeError);
      expect(await rejection(backend.storage.get(key, { start: 5, end: 4 }))).to.be.instanceOf(ValidationError);

      const large = randomBytes(LARGE);
      const largeKey = keyOf('ranged-large');
      await putBytes(backend.storage, largeKey, large);
      const start = 5 * MIB - 100;
      const end = 5 * MIB + 99;
      expect(sha256(await readAll(await backend.storage.get(largeKey, { start, end })))).to.equal(sha256(large.subarray(start, end + 1)));
      const tail = await readAll(await backend.storage.get(largeKey, { start: LARGE - 10, end: LARGE - 1 }));
      expect(tail).to.deep.equal(large.subarray(LARGE - 10));
    });

    it('says there is no object: head undefined, get StorageNotFoundError (404 not_found)', async function () {
      const key = keyOf('never-stored');
      expect(await backend.storage.head(key)).to.equal(undefined);
      const error = await rejection(backend.storage.get(key));
      expect(error).to.be.instanceOf(StorageNotFoundError);
      expect(error).to.include({ code: 'not_found', status: 404 });
      expect(await rejection(backend.storage.get(key, { start: 0, end: 1 }))).to.be.instanceOf(StorageNotFoundError);
    });

    it('deletes every version of exactly that key, idempotently', async function () {
      const key = keyOf('deleted');
      const sibling = keyOf('deleted-sibling'); // shares the prefix: must survive
      await putBytes(backend.storage, key, Buffer.from('one'));
      await putBytes(backend.storage, key, Buffer.from('two'));
      await putBytes(backend.storage, sibling, Buffer.from('sibling'));
      if (backend.s3 !== undefined) expect(await versionsOf(backend.s3.client, backend.s3.bucket, key)).to.have.length(2);

      await backend.storage.delete(key);
      expect(await backend.storage.head(key)).to.equal(undefined);
      expect(await rejection(backend.storage.get(key))).to.be.instanceOf(StorageNotFoundError);
      if (backend.s3 !== undefined) expect(await versionsOf(backend.s3.client, backend.s3.bucket, key)).to.deep.equal([]);
      if (backend.root !== undefined) expect(readdirSync(join(backend.root, tenant))).not.to.include('deleted');
      expect((await readAll(await backend.storage.get(sibling))).toString()).to.equal('sibling');

      await backend.storage.delete(key);
      await backend.storage.delete(keyOf('never-stored-either'));
    });

    for (const [label, actual, claimed] of [
      ['a single-part', 300 * KIB, 400 * KIB],
      ['a multipart', 12 * MIB, LARGE],
    ] as const) {
      it(`leaves nothing under the key when the file of ${label} upload ends before its size`, async function () {
        const key = keyOf(`failed-${actual}`);
        const error = await rejection(backend.storage.putFile(key, fileOf(randomBytes(actual)), claimed));
        expect(error).to.be.instanceOf(StorageSourceError);
        expect((error as Error).message).to.include(`ends at byte ${actual}`);
        expect(await backend.storage.head(key)).to.equal(undefined);
        if (backend.s3 !== undefined) {
          expect(await versionsOf(backend.s3.client, backend.s3.bucket, key)).to.deep.equal([]);
          const uploads = await backend.s3.client.send(new ListMultipartUploadsCommand({ Bucket: backend.s3.bucket, Prefix: key }));
          expect(uploads.Uploads ?? []).to.deep.equal([]);
        }
        if (backend.root !== undefined) {
          expect(readdirSync(join(backend.root, tenant)).filter((name) => name.includes(`failed-${actual}`))).to.deep.equal([]);
        }
      });
    }

    it('stores only the first `size` bytes of a longer file', async function () {
      const key = keyOf('prefix');
      const data = randomBytes(100 * KIB);
      await backend.storage.putFile(key, fileOf(data), 60 * KIB);
      expect(await readAll(await backend.storage.get(key))).to.deep.equal(data.subarray(0, 60 * KIB));
    });

    it('keeps the earlier object when a replacing put fails', async function () {
      const key = keyOf('kept');
      await putBytes(backend.storage, key, Buffer.from('original'));
      expect(await rejection(backend.storage.putFile(key, fileOf(randomBytes(100 * KIB)), 200 * KIB))).to.be.instanceOf(StorageSourceError);
      expect(await rejection(backend.storage.putFile(key, join(sourceDir, 'no-such-file'), 10))).to.include({ code: 'ENOENT' });
      expect((await readAll(await backend.storage.get(key))).toString()).to.equal('original');
      if (backend.root !== undefined) expect(readdirSync(join(backend.root, tenant)).filter((name) => name.endsWith('.tmp'))).to.deep.equal([]);
    });

    it('stores several large files at once through the shared part buffers', async function () {
      const files = [randomBytes(11 * MIB), randomBytes(16 * MIB + 3), randomBytes(7 * MIB)];
      const keys = files.map((_, index) => keyOf(`concurrent-${index}`));
      await Promise.all(files.map((data, index) => putBytes(backend.storage, keys[index]!, data)));
      for (const [index, data] of files.entries()) expect(sha256(await readAll(await backend.storage.get(keys[index]!)))).to.equal(sha256(data));
    });

    it('refuses keys that could leave their place', async function () {
      for (const key of ['../x', `${tenant}/../../x`, '%2e%2e/x', '%252e%252e/x', '/etc/passwd', `${tenant}//x`, `${tenant}/./x`, '', 'a\\b', 'a\0b']) {
        for (const attempt of [
          () => putBytes(backend.storage, key, Buffer.from('x')),
          () => backend.storage.get(key),
          () => backend.storage.head(key),
          () => backend.storage.delete(key),
        ]) {
          const error = await rejection(attempt());
          expect(error, `key ${JSON.stringify(key)}`).to.be.instanceOf(ValidationError);
          expect(error).to.include({ code: 'invalid_path' });
        }
      }
    });

    if (kind === 'local') {
      it('keeps folders 0700 and files 0600', async function () {
        const root = backend.root!;
        const key = keyOf('modes');
        await putBytes(backend.storage, key, Buffer.from('private'));
        expect(statSync(root).mode & 0o777).to.equal(0o700);
        expect(statSync(join(root, tenant)).mode & 0o777).to.equal(0o700);
        expect(statSync(join(root, tenant, 'modes')).mode & 0o777).to.equal(0o600);
      });
    }
  });
}

describe('object storage: configuration and failures', function () {
  it('createStorage picks local files under the data dir, or S3 when S3_BUCKET is set', function () {
    const config = testConfig();
    const local = createStorage(config);
    expect(local).to.be.instanceOf(LocalStorage);
    expect((local as LocalStorage).root).to.equal(join(config.dataDir, 'files'));

    const s3 = createStorage(testConfig({ S3_ENDPOINT: 'http://127.0.0.1:9', S3_BUCKET: 'botserver-config-test' }));
    expect(s3).to.be.instanceOf(S3Storage);
    expect(s3.kind).to.equal('s3');
    expect((s3 as S3Storage).bucket).to.equal('botserver-config-test');
  });

  it('reports an S3 server that does not answer as UnavailableError (503)', async function () {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    const storage = new S3Storage({ endpoint: 'http://127.0.0.1:9', bucket: 'nobody-home', region: 'us-east-1', accessKeyId: 'a', secretAccessKey: 'b' });
    try {
      for (const attempt of [() => storage.head('t/x'), () => storage.get('t/x'), () => storage.ensureReady(), () => putBytes(storage, 't/x', Buffer.from('x'))]) {
        const error = await rejection(attempt());
        expect(error).to.be.instanceOf(UnavailableError);
        expect(error).to.include({ code: 'unavailable', status: 503 });
      }
    } finally {
      await storage.close();
    }
  });
});
