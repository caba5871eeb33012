/**
 * Redaction applied to every log entry: fields whose names say they hold a secret or a message body, configured key
 * values wherever they appear, and bearer/JWT-shaped tokens inside free text.
 */
const SECRET_FIELD = /pass(word)?|passwd|token|secret|key$|authorization|cookie|^text$|^body$|^html$|^delta$|totp|^otp$|recovery|^code$|ciphertext|^ct$/i;
const BEARER = /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi;
const JWT_LIKE = /\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
const PEM_BLOCK = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
export const REDACTED = '[REDACTED]';

export class Redactor {
  private readonly secretValues: string[];

  constructor(secretValues: Iterable<string> = []) {
    // Longest first, so a value containing another is replaced whole; short strings would redact too much.
    this.secretValues = [...new Set(secretValues)].filter((value) => value.length >= 8).sort((a, b) => b.length - a.length);
  }

  addSecretValues(values: Iterable<string>): void {
    for (const value of values) if (value.length >= 8 && !this.secretValues.includes(value)) this.secretValues.push(value);
    this.secretValues.sort((a, b) => b.length - a.length);
  }

  redactString(text: string): string {
    let result = text.replace(PEM_BLOCK, REDACTED).replace(BEARER, `$1 ${REDACTED}`).replace(JWT_LIKE, REDACTED);
    for (const secret of this.secretValues) {
      if (result.includes(secret)) result = result.split(secret).join(REDACTED);
      // Other letter cases too: a hex key is the same key in upper case (and secrets are stored lower-cased).
      if (result.toLowerCase().includes(secret.toLowerCase())) result = result.replace(new RegExp(escapeRegExp(secret), 'gi'), REDACTED);
    }
    return result;
  }

  redact(value: unknown, seen = new WeakSet<object>(), depth = 0): unknown {
    if (typeof value === 'string') return this.redactString(value);
    if (Buffer.isBuffer(value)) return REDACTED;
    if (value === null || typeof value !== 'object') return value;
    if (seen.has(value) || depth > 8) return '[Circular]';
    seen.add(value);
    if (value instanceof Error) {
      return { name: value.name, message: this.redactString(value.message), ...(this.redact({ ...value }, seen, depth + 1) as object) };
    }
    if (Array.isArray(value)) return value.map((item) => this.redact(item, seen, depth + 1));
    const output: Record<string, unknown> = {};
    for (const [field, inner] of Object.entries(value)) {
      output[field] = SECRET_FIELD.test(field) && inner !== undefined && inner !== null ? REDACTED : this.redact(inner, seen, depth + 1);
    }
    return output;
  }
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
