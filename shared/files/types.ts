import { fileTypeFromBuffer } from 'file-type';

export { DEFAULT_UPLOAD_TYPES, typeAllowed } from './allowlist.js';

/** How many leading bytes decide a file's type (file-type reads at most this many). */
export const SNIFF_BYTES = 4100;


const TEXT_BY_EXTENSION: Readonly<Record<string, string>> = { md: 'text/markdown', markdown: 'text/markdown', csv: 'text/csv', html: 'text/html', htm: 'text/html' };

function looksLikeText(sample: Buffer): boolean {
  if (sample.includes(0)) return false;
  try {
    // stream: true tolerates a multi-byte character cut at the end of the sample
    new TextDecoder('utf-8', { fatal: true }).decode(sample, { stream: true });
    return true;
  } catch {
    return false;
  }
}

/**
 * The real type of a file from its first bytes, whatever its name claims; the name only refines plain text
 * (`notes.md` is Markdown). `application/octet-stream` when nothing is recognised.
 */
export async function sniffType(sample: Buffer, fileName: string): Promise<string> {
  const detected = await fileTypeFromBuffer(sample);
  if (detected !== undefined) return detected.mime;
  if (!looksLikeText(sample)) return 'application/octet-stream';
  const extension = fileName.includes('.') ? (fileName.split('.').pop() ?? '').toLowerCase() : '';
  return TEXT_BY_EXTENSION[extension] ?? 'text/plain';
}
