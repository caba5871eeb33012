import { Worker } from 'node:worker_threads';
import { runsCompiled } from '../runtime.js';
import { ExtractionError } from './extract.js';
import type { TextSection } from './types.js';

/** Heap a document's extraction may use (pdfjs holds a PDF's objects and fonts while it reads). */
export const EXTRACTION_HEAP_MB = 256;
/**
 * The smallest cap given to a thread: with a heap of a megabyte or two, Node 24 aborts the whole process while it
 * creates the thread's isolate ("GC during deserialization"), instead of failing the thread.
 */
const MIN_HEAP_MB = 16;

/** Under tsx a thread must register tsx's loader first (the .mjs entry); compiled, it starts at its body. */
const THREAD_ENTRY = runsCompiled(import.meta.url) ? new URL('./extract-thread-main.js', import.meta.url) : new URL('./extract-thread-entry.mjs', import.meta.url);

type ThreadAnswer = { ok: true; sections: TextSection[] } | { ok: false; code: string; message: string; status: number };

/**
 * Extracts a document in a worker thread whose heap is capped at `heapMb` (at least MIN_HEAP_MB): a document that
 * needs more (a huge or hostile PDF) fails as `document_too_large` instead of taking the embed worker's memory with
 * it, and everything pdfjs held is released when the thread ends.
 */
export function extractInThread(bytes: Buffer, type: string, heapMb = EXTRACTION_HEAP_MB): Promise<TextSection[]> {
  const capMb = Math.max(heapMb, MIN_HEAP_MB);
  return new Promise((resolve, reject) => {
    const thread = new Worker(THREAD_ENTRY, {
      workerData: { bytes, type },
      resourceLimits: { maxOldGenerationSizeMb: capMb, maxYoungGenerationSizeMb: 32 },
      stdout: false,
      stderr: false,
    });
    let settled = false;
    thread.once('message', (answer: ThreadAnswer) => {
      settled = true;
      if (answer.ok) resolve(answer.sections);
      else reject(new ExtractionError(answer.code === 'unsupported_document' || answer.code === 'document_too_large' ? answer.code : 'unreadable_document', answer.message));
      void thread.terminate();
    });
    thread.once('error', (error: Error & { code?: string }) => {
      if (settled) return;
      settled = true;
      reject(error.code === 'ERR_WORKER_OUT_OF_MEMORY' ? new ExtractionError('document_too_large', `reading it needed more than ${capMb} MB`) : error);
    });
    thread.once('exit', (code) => {
      if (!settled) reject(new ExtractionError('unreadable_document', `the extraction stopped (exit code ${code})`));
    });
  });
}
