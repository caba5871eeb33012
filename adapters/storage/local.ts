import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { safeJoin } from '../../shared/paths.js';
import { StorageNotFoundError, StorageRangeError } from './errors.js';
import { checkRange, keySegments } from './keys.js';
import { readExactly } from './readExactly.js';
import type { ByteRange, ObjectStorage } from './types.js';

const FOLDER_MODE = 0o700;
const FILE_MODE = 0o600;
const COPY_BUFFER_BYTES = 1024 * 1024;

function errnoCode(error: unknown): string | undefined {
  const code = error instanceof Error ? (error as NodeJS.ErrnoException).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

/** ENOENT: nothing there; ENOTDIR: a path segment names a file, so nothing can be below it. */
function isMissing(error: unknown): boolean {
  const code = errnoCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Makes a rename (or a new entry) in `folder` durable. */
async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Copies the first `size` bytes of `source` into a new file `target` (0600) in 1 MiB steps and syncs it. */
async function copyPrefix(source: string, target: string, size: number): Promise<void> {
  const input = await open(source, 'r');
  try {
    const output = await open(target, 'wx', FILE_MODE);
    try {
      const buffer = Buffer.allocUnsafe(Math.min(COPY_BUFFER_BYTES, Math.max(size, 1)));
      for (let position = 0; position < size; ) {
        const chunk = await readExactly(input, buffer, Math.min(buffer.length, size - position), position);
        for (let written = 0; written < chunk.length; ) {
          written += (await output.write(chunk, written, chunk.length - written, position + written)).bytesWritten;
        }
        position += chunk.length;
      }
      await output.sync();
    } finally {
      await output.close();
    }
  } finally {
    await input.close();
  }
}

/**
 * Objects as files below `root`, one folder level per key segment (`root/tenantId/fileId`), folders 0700 and
 * files 0600. A `putFile` writes a temp file next to the target, syncs it and renames it over the target, so a reader
 * sees the old object or the complete new one, never a partial one. There are no versions: `putFile` replaces.
 */
export class LocalStorage implements ObjectStorage {
  readonly kind = 'local' as const;
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  async ensureReady(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: FOLDER_MODE });
  }

  /** The absolute path of `key`; throws ValidationError `invalid_path` for a key that could leave the root. */
  private pathOf(key: string): string {
    return safeJoin(this.root, ...keySegments(key));
  }

  async putFile(key: string, path: string, size: number): Promise<void> {
    const target = this.pathOf(key);
    const folder = dirname(target);
    await mkdir(folder, { recursive: true, mode: FOLDER_MODE });
    const tempPrefix = `.${basename(target)}.`;
    // A put of this key that a crash interrupted left its temp file; one job writes a key at a time, so it is stale.
    for (const name of await readdir(folder)) {
      if (name.startsWith(tempPrefix) && name.endsWith('.tmp')) await rm(join(folder, name), { force: true });
    }
    const temp = join(folder, `${tempPrefix}${randomBytes(8).toString('hex')}.tmp`);
    let renamed = false;
    try {
      await copyPrefix(path, temp, size);
      await rename(temp, target);
      renamed = true;
      await syncFolder(folder);
    } finally {
      if (!renamed) await rm(temp, { force: true });
    }
  }

  async get(key: string, range?: ByteRange): Promise<Readable> {
    const path = this.pathOf(key);
    if (range !== undefined) checkRange(range);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
    } catch (error) {
      if (isMissing(error)) throw new StorageNotFoundError();
      throw error;
    }
    try {
      const info = await handle.stat();
      if (!info.isFile()) throw new StorageNotFoundError();
      if (range !== undefined && range.start >= info.size) throw new StorageRangeError();
    } catch (error) {
      await handle.close();
      throw error;
    }
    // The stream owns the handle from here and closes it when it ends or is destroyed.
    return handle.createReadStream(range === undefined ? {} : { start: range.start, end: range.end });
  }

  async head(key: string): Promise<{ size: number } | undefined> {
    const path = this.pathOf(key);
    try {
      const info = await stat(path);
      return info.isFile() ? { size: info.size } : undefined;
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    try {
      const info = await stat(path);
      if (!info.isFile()) return;
      await unlink(path);
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
