import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createEncryptStream, KeyRing } from '../crypto/index.js';
import { DEFAULT_CHUNK_SIZE } from '../crypto/stream-format.js';
import { isUuid } from '../db/index.js';
import { safeJoin } from '../paths.js';
import { contentAad } from './aad.js';
import { newDataKey, wrapDataKey } from './dataKey.js';

const PART = '.part';
const READ_BUFFER_BYTES = 1024 * 1024;
const STAGED = '.staged';

export interface StagedEntry {
  tenantId: string;
  fileId: string;
  kind: 'part' | 'staged';
  path: string;
  modifiedMs: number;
}

/** What a committed staging file is: its data key (wrapped), record size, and the plaintext's size and SHA-256. */
export interface StagedContent {
  wrappedKey: string;
  chunkSize: number;
  size: number;
  sha256: string;
}

/** An upload being written: plaintext goes in through `input`; `commit` makes it a staged file, `abort` removes it. */
export interface StagingWriter {
  input: Writable;
  /** Settles when everything written to `input` is on disk (rejects when the write failed). */
  done: Promise<void>;
  commit(): Promise<StagedContent>;
  abort(): Promise<void>;
}

/** Counts and hashes the plaintext on its way to the cipher. */
class Measure extends Transform {
  readonly #hash = createHash('sha256');
  bytes = 0;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null, data?: Buffer) => void): void {
    this.#hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  digest(): string {
    return this.#hash.digest('hex');
  }
}

export class FileStaging {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'staging');
  }

  path(tenantId: string, fileId: string, kind: 'part' | 'staged'): string {
    return safeJoin(this.root, tenantId, `${fileId}${kind === 'part' ? PART : STAGED}`);
  }

  async writer(master: KeyRing, tenantId: string, fileId: string): Promise<StagingWriter> {
    const folder = safeJoin(this.root, tenantId);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    const partPath = this.path(tenantId, fileId, 'part');
    const dataKey = newDataKey();
    const wrappedKey = wrapDataKey(master, fileId, dataKey);
    const ring = new KeyRing({ current: dataKey });
    const measure = new Measure();
    const encrypt = createEncryptStream(ring, contentAad(fileId), { chunkSize: DEFAULT_CHUNK_SIZE });
    const file = createWriteStream(partPath, { flags: 'wx', mode: 0o600 });
    const done = pipeline(measure, encrypt, file).finally(() => ring.zeroize());
    done.catch(() => undefined); // observed by the caller through `done`; never an unhandled rejection
    return {
      input: measure,
      done,
      commit: async () => {
        await done;
        await rename(partPath, this.path(tenantId, fileId, 'staged'));
        return { wrappedKey, chunkSize: DEFAULT_CHUNK_SIZE, size: measure.bytes, sha256: measure.digest() };
      },
      abort: async () => {
        const aborted = new Error('upload aborted');
        measure.destroy(aborted);
        encrypt.destroy(aborted);
        file.destroy(aborted);
        await done.catch(() => undefined);
        await rm(partPath, { force: true });
      },
    };
  }

  /** The staged file's bytes (the encrypted object, as it is to be stored). */
  reader(tenantId: string, fileId: string, range?: { start: number; end: number }): Readable {
    return createReadStream(this.path(tenantId, fileId, 'staged'), { highWaterMark: READ_BUFFER_BYTES, ...(range === undefined ? {} : { start: range.start, end: range.end }) });
  }

  async stagedSize(tenantId: string, fileId: string): Promise<number | undefined> {
    const info = await stat(this.path(tenantId, fileId, 'staged')).catch(() => undefined);
    return info?.size;
  }

  async remove(tenantId: string, fileId: string): Promise<void> {
    await Promise.all([rm(this.path(tenantId, fileId, 'part'), { force: true }), rm(this.path(tenantId, fileId, 'staged'), { force: true })]);
  }

  /** Every part and staged file, for the start-up sweep. Names that are not ours are left alone. */
  async list(): Promise<StagedEntry[]> {
    const entries: StagedEntry[] = [];
    const tenants = await readdir(this.root).catch(() => [] as string[]);
    for (const tenantId of tenants.filter(isUuid)) {
      const names = await readdir(safeJoin(this.root, tenantId)).catch(() => [] as string[]);
      for (const name of names) {
        const kind = name.endsWith(PART) ? 'part' : name.endsWith(STAGED) ? 'staged' : undefined;
        if (kind === undefined) continue;
        const fileId = name.slice(0, name.length - (kind === 'part' ? PART : STAGED).length);
        if (!isUuid(fileId)) continue;
        const path = this.path(tenantId, fileId, kind);
        const info = await stat(path).catch(() => undefined);
        if (info !== undefined) entries.push({ tenantId, fileId, kind, path, modifiedMs: info.mtimeMs });
      }
    }
    return entries;
  }
}
