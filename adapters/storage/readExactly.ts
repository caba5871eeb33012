import type { FileHandle } from 'node:fs/promises';
import { StorageSourceError } from './errors.js';

/** `length` bytes of the file from `position`, read into `buffer`; a file that ends sooner is a StorageSourceError. */
export async function readExactly(file: FileHandle, buffer: Buffer, length: number, position: number): Promise<Buffer> {
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await file.read(buffer, filled, length - filled, position + filled);
    if (bytesRead === 0) throw new StorageSourceError(`The file to store ends at byte ${position + filled}, before its expected size`);
    filled += bytesRead;
  }
  return buffer.subarray(0, length);
}
