import { ValidationError } from '../../shared/errors.js';
import { safeJoin } from '../../shared/paths.js';
import type { ByteRange } from './types.js';

/** A fixed root that `safeJoin` resolves keys against only to check them (nothing is written there). */
const CHECK_ROOT = '/botserver-storage-key';
/** S3 allows 1024 bytes; our keys (`tenantId/fileId`) are far shorter. */
const MAX_KEY_BYTES = 1024;

/**
 * The `/`-separated segments of a storage key, checked the same way for every backend: each segment must pass
 * `safeJoin` (no `..`, also percent-encoded, no absolute, NUL, control or backslash), and `.` or empty segments are
 * refused too, so the same key names the same object in a folder and in a bucket. Throws ValidationError
 * `invalid_path`.
 */
export function keySegments(key: string): string[] {
  if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
    throw new ValidationError(`A storage key must have 1 to ${MAX_KEY_BYTES} bytes`, undefined, 'invalid_path');
  }
  const segments = key.split('/');
  if (segments.some((segment) => segment === '.')) throw new ValidationError('A storage key may not contain "." segments', undefined, 'invalid_path');
  safeJoin(CHECK_ROOT, ...segments);
  return segments;
}

/** Checks an inclusive byte range: whole numbers, `0 <= start <= end`. Throws ValidationError `invalid_range`. */
export function checkRange(range: ByteRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw new ValidationError('A byte range needs whole numbers with 0 <= start <= end', undefined, 'invalid_range');
  }
}
