const ALPHABET = /^[A-Za-z0-9_-]*$/;

export function toBase64Url(bytes: Buffer): string {
  return bytes.toString('base64url');
}

/**
 * Strict base64url (no padding) decoding. Node's decoder silently skips invalid characters and ignores stray
 * trailing bits, which would let many different strings stand for one ciphertext; only the canonical encoding is
 * accepted here. Returns undefined when the input is not canonical base64url.
 */
export function fromBase64Url(text: string): Buffer | undefined {
  if (!ALPHABET.test(text) || text.length % 4 === 1) return undefined;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : undefined;
}
