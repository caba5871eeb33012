/** The body of an extraction thread (see extract-thread.ts): one document in, its sections or its error out. */
import { parentPort, workerData } from 'node:worker_threads';
import { AppError } from '../errors.js';
import { extractSections } from './extract.js';

const { bytes, type } = workerData as { bytes: Uint8Array; type: string };
extractSections(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), type).then(
  (sections) => parentPort?.postMessage({ ok: true, sections }),
  (error: unknown) =>
    parentPort?.postMessage(
      error instanceof AppError && error.expose
        ? { ok: false, code: error.code, message: error.message, status: error.status }
        : { ok: false, code: 'unreadable_document', message: 'the document could not be read', status: 422 },
    ),
);
