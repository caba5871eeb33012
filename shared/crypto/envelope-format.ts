import { CryptoError } from '../errors.js';
import { fromBase64Url } from './base64url.js';
import { isValidKid } from './keyring.js';

/** AES-256-GCM envelope as stored in JSON (queue payloads) or, via `toCompact`, in text columns. */
export type Envelope = { v: 1; kid: string; iv: string; tag: string; ct: string };

/** An envelope whose fields have been checked and decoded. */
export type ParsedEnvelope = { kid: string; iv: Buffer; tag: Buffer; ct: Buffer };

export const IV_BYTES = 12;
export const TAG_BYTES = 16;
const FIELDS = ['v', 'kid', 'iv', 'tag', 'ct'] as const;

function malformed(reason: string): CryptoError {
  return new CryptoError('malformed_envelope', `Malformed envelope: ${reason}`);
}

function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function decodeField(value: unknown, name: string, expectedBytes?: number): Buffer {
  const bytes = typeof value === 'string' ? fromBase64Url(value) : undefined;
  if (bytes === undefined) throw malformed(`${name} must be a base64url string`);
  if (expectedBytes !== undefined && bytes.length !== expectedBytes) {
    throw malformed(`${name} must decode to ${expectedBytes} bytes`);
  }
  return bytes;
}

/** Strict shape check: exactly the five fields, v === 1, valid kid, canonical base64url, exact iv/tag sizes. */
export function parseEnvelope(value: unknown): ParsedEnvelope {
  if (!isPlainRecord(value)) throw malformed('not an object');
  const keys = Object.keys(value);
  if (keys.length !== FIELDS.length || !FIELDS.every((field) => Object.hasOwn(value, field))) {
    throw malformed(`expected exactly the fields ${FIELDS.join(', ')}`);
  }
  if (value.v !== 1) throw malformed('unsupported version');
  if (!isValidKid(value.kid)) throw malformed('kid must be a string of [A-Za-z0-9_-]{1,64}');
  return {
    kid: value.kid,
    iv: decodeField(value.iv, 'iv', IV_BYTES),
    tag: decodeField(value.tag, 'tag', TAG_BYTES),
    ct: decodeField(value.ct, 'ct'),
  };
}

/** `v1.kid.iv.tag.ct` — none of kid or base64url can contain a dot, so the split is unambiguous. */
export function toCompact(envelope: Envelope): string {
  return `v${envelope.v}.${envelope.kid}.${envelope.iv}.${envelope.tag}.${envelope.ct}`;
}

/** Inverse of `toCompact`; the result still goes through `parseEnvelope` when decrypted. */
export function fromCompact(sealed: unknown): Envelope {
  if (typeof sealed !== 'string') throw malformed('sealed value must be a string');
  const parts = sealed.split('.');
  if (parts.length !== 5) throw malformed('sealed value must have five dot-separated parts');
  const [version = '', kid = '', iv = '', tag = '', ct = ''] = parts;
  if (version !== 'v1') throw malformed('unsupported version');
  return { v: 1, kid, iv, tag, ct };
}
