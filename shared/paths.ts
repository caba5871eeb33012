import path from 'node:path';
import { ValidationError } from './errors.js';

/**
 * Storage paths and display names that can never escape their root.
 *
 * `safeJoin` is for server-side storage keys (tenant ids, file ids, sub-folders): it refuses rather than repairs,
 * because a storage key that needs repairing was forged. `safeFileName` is for names users give their files: it
 * repairs, because a display name is data to keep, not an address to follow.
 */

const CODE = 'invalid_path';
/** Longest storage segment we accept; far above any id we generate, well below PATH_MAX. */
const MAX_SEGMENT_LENGTH = 255;
/** How many layers of percent-encoding are peeled off to look for traversal (`%252e%252e` is two layers). */
const MAX_DECODE_LAYERS = 4;
/** C0 controls, DEL and C1 controls. */
const CONTROL = /\p{Cc}/u;
/** `C:`, `C:\`, `\\server`: absolute on Windows, never a relative storage key. */
const WINDOWS_ABSOLUTE = /^[A-Za-z]:/;

function refuse(message: string): never {
  throw new ValidationError(message, undefined, CODE);
}

/** The segment and every percent-decoded form of it, outermost first; a malformed or too deep escape is refused. */
function decodedForms(segment: string): string[] {
  const forms = [segment];
  let current = segment;
  for (let layer = 0; current.includes('%'); layer += 1) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(current);
    } catch {
      return refuse('A path segment has a malformed percent-escape');
    }
    if (decoded === current) break;
    if (layer === MAX_DECODE_LAYERS) refuse('A path segment is percent-encoded too many times');
    forms.push(decoded);
    current = decoded;
  }
  return forms;
}

function checkSegment(segment: unknown): string {
  if (typeof segment !== 'string') return refuse('A path segment must be a string');
  if (segment.length === 0 || segment.length > MAX_SEGMENT_LENGTH) refuse(`A path segment must have 1 to ${MAX_SEGMENT_LENGTH} characters`);
  for (const form of decodedForms(segment)) {
    if (form.includes('\0')) refuse('A path segment may not contain a NUL byte');
    if (CONTROL.test(form)) refuse('A path segment may not contain control characters');
    if (form.includes('\\')) refuse('A path segment may not contain a backslash');
    if (path.posix.isAbsolute(form) || WINDOWS_ABSOLUTE.test(form)) refuse('A path segment may not be absolute');
    if (form.split('/').some((part) => part === '..')) refuse('A path segment may not climb out of its folder (..)');
  }
  return segment;
}

/**
 * Resolves `segments` below `root` and returns the absolute path; throws ValidationError `invalid_path` when any
 * segment is absolute, climbs (`..`, also percent-encoded, any number of layers up to four), holds a NUL byte, a
 * control character or a backslash, or when the result is not strictly inside `root` (checked by path prefix
 * with a separator, so `/data/files-evil` is not inside `/data/files`). Symlinks are not followed: storage roots
 * are created by the server and hold no links.
 */
export function safeJoin(root: string, ...segments: string[]): string {
  if (typeof root !== 'string' || root.length === 0 || root.includes('\0')) refuse('The storage root is not a path');
  const base = path.resolve(root);
  if (segments.length === 0) refuse('A storage path needs at least one segment below its root');
  const checked = segments.map(checkSegment);
  const resolved = path.resolve(base, ...checked);
  const prefix = base.endsWith(path.sep) ? base : `${base}${path.sep}`;
  if (!resolved.startsWith(prefix) || resolved.length <= prefix.length) refuse('The storage path is not inside its root');
  return resolved;
}

/** Longest file name most file systems accept, in UTF-8 bytes. */
export const MAX_FILE_NAME_BYTES = 255;
const FALLBACK_NAME = 'file';
/** Bidirectional overrides and isolates (`invoice\u202efdp.exe` shows as `invoiceexe.pdf`), zero-width, line and paragraph separators, BOM. */
const INVISIBLE = /[\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/gu;
/** Characters Windows refuses in names, and the separators. */
const RESERVED = /[<>:"|?*/\\]/gu;
const CONTROL_ALL = /\p{Cc}/gu;
/** With the `u` flag a surrogate code point is one that is not part of a pair: it cannot be encoded as UTF-8. */
const LONE_SURROGATE = /\p{Cs}/gu;

function utf8Length(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Cuts `text` (whole code points) to at most `maxBytes` UTF-8 bytes. */
function truncateUtf8(text: string, maxBytes: number): string {
  let out = '';
  let bytes = 0;
  for (const char of text) {
    const size = utf8Length(char);
    if (bytes + size > maxBytes) break;
    out += char;
    bytes += size;
  }
  return out;
}

/** Leading dots (hidden files, `..`), trailing dots and spaces (Windows drops them), surrounding white space. */
function tidy(name: string): string {
  return name.replace(/^[.\s]+/u, '').replace(/[.\s]+$/u, '');
}

/**
 * A display name safe to store, show and put in a Content-Disposition header: the last path component only (both
 * `/` and `\` count as separators), without control, invisible or reserved characters, without leading dots or
 * trailing dots and spaces, at most 255 UTF-8 bytes (a short extension is kept), never empty (`file`). Idempotent.
 */
export function safeFileName(name: unknown): string {
  const text = typeof name === 'string' ? name : '';
  const lastComponent = text.split(/[/\\]/u).filter((part) => part !== '').pop() ?? '';
  const cleaned = tidy(lastComponent.replace(LONE_SURROGATE, '').replace(CONTROL_ALL, '').replace(INVISIBLE, '').replace(RESERVED, '_').normalize('NFC'));
  if (cleaned === '') return FALLBACK_NAME;
  if (utf8Length(cleaned) <= MAX_FILE_NAME_BYTES) return cleaned;
  const dot = cleaned.lastIndexOf('.');
  const extension = dot > 0 && cleaned.length - dot <= 16 ? cleaned.slice(dot) : '';
  const stem = tidy(truncateUtf8(cleaned.slice(0, cleaned.length - extension.length), MAX_FILE_NAME_BYTES - utf8Length(extension)));
  if (stem === '') return FALLBACK_NAME;
  return tidy(`${stem}${extension}`);
}
