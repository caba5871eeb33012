import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createDecryptStream, createEncryptStream, type KeyRing } from '../crypto/index.js';
import { isUuid } from '../db/index.js';
import { safeJoin } from '../paths.js';
import { stagingAad } from './aad.js';

const PART = '.part';
/** Staging records are large: the file is read back whole, never by range, so fewer records cost less. */
const STAGING_CHUNK_SIZE = 1024 * 1024;
const READ_BUFFER_BYTES = STAGING_CHUNK_SIZE + 64 * 1024;
const STAGED = '.staged';

export interface StagedEntry {
  tenantId: string;
  fileId: string;
  kind: 'part' | 'staged';
  path: string;
  modifiedMs: number;
}

/** An upload being written: bytes go in through `input`; `commit` makes it a staged file, `abort` removes it. */
export interface StagingWriter {
  input: Writable;
  /** Settles when everything written to `input` is on disk (rejects when the write failed). */
  done: Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * Uploads wait here, between the API that received them and the `files` worker that encrypts them for storage.
 * The folder is BOTSERVER_DATA_DIR/staging (0700; a volume shared by the API and the files workers when they run
 * apart), one sub-folder per tenant, files 0600. Even here the content is never plaintext: it is sealed with the
 * streaming AEAD under BOTSERVER_ENCRYPTION_KEY, bound to the file id. `<id>.part` is being written; `<id>.staged`
 * is complete and has a `file-encrypt` job.
 */
export class FileStaging {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = join(dataDir, 'staging');
  }

  path(tenantId: string, fileId: string, kind: 'part' | 'staged'): string {
    return safeJoin(this.root, tenantId, `${fileId}${kind === 'part' ? PART : STAGED}`);
  }

  async writer(ring: KeyRing, tenantId: string, fileId: string): Promise<StagingWriter> {
    const folder = safeJoin(this.root, tenantId);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    const partPath = this.path(tenantId, fileId, 'part');
    const encrypt = createEncryptStream(ring, stagingAad(fileId), { chunkSize: STAGING_CHUNK_SIZE });
    const file = createWriteStream(partPath, { flags: 'wx', mode: 0o600 });
    const done = pipeline(encrypt, file);
    done.catch(() => undefined); // observed by the caller through `done`; never an unhandled rejection
    return {
      input: encrypt,
      done,
      commit: async () => {
        await done;
        await rename(partPath, this.path(tenantId, fileId, 'staged'));
      },
      abort: async () => {
        const aborted = new Error('upload aborted');
        encrypt.destroy(aborted);
        file.destroy(aborted);
        await done.catch(() => undefined);
        await rm(partPath, { force: true });
      },
    };
  }

  /** The staged file's plaintext; the stream errors when the staged bytes were altered or cut. */
  reader(ring: KeyRing, tenantId: string, fileId: string): Readable {
    const file = createReadStream(this.path(tenantId, fileId, 'staged'), { highWaterMark: READ_BUFFER_BYTES });
    const decrypt = createDecryptStream(ring, stagingAad(fileId));
    file.on('error', (error) => decrypt.destroy(error));
    return file.pipe(decrypt);
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
