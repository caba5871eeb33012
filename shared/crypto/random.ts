import { randomBytes, randomUUID } from 'node:crypto';

function assertByteCount(bytes: number): void {
  if (!Number.isInteger(bytes) || bytes < 1) throw new RangeError('Byte count must be a positive integer');
}

/** URL-safe random token; 32 bytes (256 bits) by default. */
export function randomToken(bytes = 32): string {
  assertByteCount(bytes);
  return randomBytes(bytes).toString('base64url');
}

export function randomHex(bytes: number): string {
  assertByteCount(bytes);
  return randomBytes(bytes).toString('hex');
}

export function randomUuid(): string {
  return randomUUID();
}
