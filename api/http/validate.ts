import { z } from 'zod';
import { ValidationError } from '../../shared/errors.js';

/** The body (or query) of a route that takes none: absent or `{}`; any field is refused. */
export const noFieldsSchema = z.strictObject({});

/** A surrogate that is not half of a pair (with the `u` flag, a pair is one code point and not `Cs`). */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * NUL characters (PostgreSQL text and jsonb cannot hold them) and lone surrogates (not encodable as UTF-8; jsonb
 * refuses their `\ud800` escapes).
 */
function unsafeText(text: string): boolean {
  return text.includes('\0') || LONE_SURROGATE.test(text);
}

/** Path (`rules.3.match`, `''` for the input itself) of the first string value or key holding unsafe text, if any. */
export function findUnsafeText(input: unknown): string | undefined {
  // Iterative, so a deeply nested payload cannot exhaust the stack.
  const stack: Array<{ value: unknown; path: string }> = [{ value: input, path: '' }];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const { value, path } = item;
    if (typeof value === 'string') {
      if (unsafeText(value)) return path;
    } else if (Array.isArray(value)) {
      value.forEach((element, index) => stack.push({ value: element, path: path === '' ? String(index) : `${path}.${index}` }));
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, element] of Object.entries(value)) {
        const child = path === '' ? key : `${path}.${key}`;
        if (unsafeText(key)) return path;
        stack.push({ value: element, path: child });
      }
    }
  }
  return undefined;
}

/** Parses input with its schema; the first problem becomes a 400 naming the offending field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, code = 'invalid_request'): z.infer<S> {
  const unsafe = findUnsafeText(input);
  if (unsafe !== undefined) {
    throw new ValidationError(`${unsafe === '' ? 'input' : unsafe}: text may not contain NUL characters or unpaired surrogates`, unsafe === '' ? undefined : unsafe, code);
  }
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue === undefined ? undefined : issue.code === 'unrecognized_keys' ? issue.keys.join(',') : issue.path.join('.');
  const message = issue === undefined ? 'invalid input' : issue.code === 'unrecognized_keys' ? `unknown field(s): ${issue.keys.join(', ')}` : `${field === '' ? 'input' : field}: ${issue.message}`;
  throw new ValidationError(message, field === '' ? undefined : field, code);
}
