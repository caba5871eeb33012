/**
 * fast-check generators for the fuzz suites: hostile strings (traversal, injection, text storage chokes on), path
 * parameters, query strings, and bodies built from a route's own example and field names.
 */
import fc from 'fast-check';
import { z } from 'zod';

/** Percent-encodes every UTF-8 byte of `char` (a lone surrogate becomes U+FFFD, as any UTF-8 encoder makes it). */
function percentBytes(char: string): string {
  return [...Buffer.from(char, 'utf8')].map((byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join('');
}

/** Percent-encodes what an HTTP request line cannot carry (controls, spaces, non-ASCII, `#`) and leaves the rest raw. */
export function rawEncode(text: string): string {
  return text.replace(/[^\x21-\x7e]|#/gu, percentBytes);
}

/** encodeURIComponent that also takes lone surrogates. */
export function encodeComponent(text: string): string {
  return text.replace(/[^A-Za-z0-9\-_.!~*'()]/gu, percentBytes);
}

export const TRAVERSAL = ['..', '../..', '../../etc/passwd', '..%2f..%2fetc%2fpasswd', '%2e%2e', '%2e%2e%2f', '%252e%252e%252f', '..\\..\\windows', '....//', '.%00.', '%00', '/etc/passwd', '%2fetc%2fpasswd', '..;/', '%c0%ae%c0%ae'];
export const INJECTION = ["' OR '1'='1", "1; DROP TABLE bots;--", "00000000-0000-0000-0000-000000000000' OR 1=1--", '$(id)', '`id`', '${7*7}', '{{7*7}}', '<script>alert(1)</script>', '%ZZ', '%', '%E0%A4%A', '\u0000', '\ud800', 'null', 'undefined', '[object Object]', '-1', '1e309', 'NaN'];

/** Characters storage and protocols choke on: NUL, lone surrogates, controls, bidi overrides, line separators, quotes. */
export const STORAGE_HOSTILE = ['\u0000', '\ud800', '\udfff', '\udc00\ud800', '\u0001', '\u001b[31m', '\r\n', '\u202e', '\u2028', '\ufeff', '\uffff', "'", '"', '\\', '😀'];

/** Ordinary text with a storage-hostile piece somewhere in it. */
export const storageHostileString = fc
  .tuple(fc.string({ maxLength: 12 }), fc.constantFrom(...STORAGE_HOSTILE), fc.string({ maxLength: 12 }))
  .map(([before, piece, after]) => `${before}${piece}${after}`);

export const hostileString = fc.oneof(
  fc.constantFrom(...TRAVERSAL, ...INJECTION),
  storageHostileString,
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength: 30 }),
  fc.integer({ min: 200, max: 6_000 }).map((length) => 'a'.repeat(length)),
);

/** Whether a (raw) path parameter keeps the request on its route: an empty one, a `/` or a `?` lands elsewhere. */
export function staysOnRoute(param: string): boolean {
  return param !== '' && !/[/?]/.test(param);
}

/** A path parameter: the real ids, other UUIDs, and hostile strings, sent raw or percent-encoded. */
export function pathParamArb(realIds: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: realIds.length > 0 ? 3 : 0, arbitrary: realIds.length > 0 ? fc.constantFrom(...realIds) : fc.uuid() },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 1, arbitrary: fc.uuid().map((id) => id.toUpperCase()) },
    { weight: 3, arbitrary: hostileString.map(rawEncode) },
    { weight: 2, arbitrary: hostileString.map(encodeComponent) },
  );
}

/** A query string (with its `?`, or empty): the route's valid example with one value made hostile, real parameter names with hostile values, random pairs, malformed escapes. */
export function queryArb(knownNames: string[], example?: Record<string, string>): fc.Arbitrary<string> {
  const names = fc.oneof(fc.constantFrom('cookie', 'all', 'after', 'limit', 'type', 'actor', 'since', ...knownNames), fc.string({ maxLength: 10 }));
  const values = fc.oneof(hostileString, fc.uuid(), fc.integer().map(String), fc.constantFrom('1', '0', 'true', '', '500', '501', '2030-01-31T12:00:00Z'));
  const seed = example ?? {};
  const seedNames = Object.keys(seed);
  const nearValid = seedNames.length === 0
    ? fc.constant('')
    : fc.tuple(fc.constantFrom(...seedNames), fc.option(values, { nil: undefined })).map(([name, value]) => `?${new URLSearchParams({ ...seed, ...(value === undefined ? {} : { [name]: value }) }).toString()}`);
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant('') },
    { weight: seedNames.length === 0 ? 0 : 3, arbitrary: nearValid },
    { weight: 4, arbitrary: fc.array(fc.tuple(names, values), { minLength: 1, maxLength: 6 }).map((pairs) => `?${new URLSearchParams(pairs).toString()}`) },
    { weight: 2, arbitrary: fc.tuple(fc.array(fc.oneof(names, values), { minLength: 1, maxLength: 6 }), fc.constantFrom('&', '=', '&&', '[]=', '%', ';')).map(([parts, glue]) => `?${rawEncode(parts.join(glue))}`) },
  );
}

/** Any JSON value as text. */
const anyJson = fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.stringify(value) ?? 'null');

/** A value of any JSON type, including the kinds of strings that break storage (NUL, lone surrogates, huge). */
export const nastyValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  hostileString,
  fc.constantFrom(true, false, null, 0, -1, 1.5, Number.MAX_SAFE_INTEGER, 1e308, -1e308, [], {}, [null], { '': '' }, 'admin', 'operator', 'user', 'a@b.example'),
  fc.array(fc.record({ match: hostileString, reply: hostileString }, { requiredKeys: [] }), { maxLength: 3 }),
);

export interface BodyCase {
  contentType: string | undefined;
  contentEncoding: string | undefined;
  body: string | undefined;
}

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'application/merge-patch+json',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'text/plain',
  'text/plain;charset=UTF-8',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'garbage/;;;',
  '',
];

export type JsonPath = Array<string | number>;

export function leafPaths(value: unknown, path: JsonPath = []): JsonPath[] {
  if (Array.isArray(value)) return value.length === 0 ? [path] : value.flatMap((element, index) => leafPaths(element, [...path, index]));
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    return entries.length === 0 ? [path] : entries.flatMap(([key, element]) => leafPaths(element, [...path, key]));
  }
  return [path];
}

export function leafAt(root: unknown, path: JsonPath): unknown {
  return path.reduce<unknown>((node, key) => (typeof node === 'object' && node !== null ? (node as Record<string | number, unknown>)[key] : undefined), root);
}

/** A copy of `root` with the value at `path` replaced. */
export function replaceAt(root: unknown, path: JsonPath, replacement: unknown): unknown {
  const [head, ...rest] = path;
  if (head === undefined) return replacement;
  if (Array.isArray(root)) return (root as unknown[]).map((element, index) => (index === head ? replaceAt(element, rest, replacement) : element));
  const object = typeof root === 'object' && root !== null ? (root as Record<string, unknown>) : {};
  return { ...object, [head]: replaceAt(object[head], rest, replacement) };
}

/** The route's valid example body, then with one or several leaves made hostile, an unknown field, a field dropped. */
export function nearValidArb(example: Record<string, unknown>): fc.Arbitrary<unknown> {
  const leaves = leafPaths(example);
  const keys = Object.keys(example);
  return fc.oneof(
    fc.constant(example),
    fc.tuple(fc.constantFrom(...leaves), nastyValue).map(([path, value]) => replaceAt(example, path, value)),
    fc.array(fc.tuple(fc.constantFrom(...leaves), hostileString), { minLength: 1, maxLength: 4 }).map((changes) => changes.reduce<unknown>((body, [path, value]) => replaceAt(body, path, value), example)),
    fc.tuple(fc.constantFrom(...leaves), storageHostileString).map(([path, value]) => replaceAt(example, path, value)),
    fc.tuple(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 })).map(([key, value]) => ({ ...example, [key]: value })),
    fc.constantFrom(...keys).map((key) => Object.fromEntries(Object.entries(example).filter(([name]) => name !== key))),
  );
}

/** Bodies: near-valid variants of the example, any JSON, the route's own field names with any values, malformed text, deep nesting, sizes around the limits. */
export function bodyArb(fieldNames: string[], example?: Record<string, unknown>): fc.Arbitrary<BodyCase> {
  const names = fieldNames.length > 0 ? fieldNames : ['id', 'name'];
  const shaped = fc
    .tuple(fc.dictionary(fc.constantFrom(...names), nastyValue, { maxKeys: names.length }), fc.option(fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 }), { nil: undefined }))
    .map(([fields, extra]) => JSON.stringify({ ...fields, ...extra }));
  const text = fc.oneof(
    { weight: example === undefined ? 0 : 8, arbitrary: example === undefined ? fc.constant('{}') : nearValidArb(example).map((body) => JSON.stringify(body)) },
    { weight: 4, arbitrary: shaped },
    { weight: 2, arbitrary: anyJson },
    { weight: 1, arbitrary: fc.string({ maxLength: 80 }) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 5_000 }).map((depth) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`) },
    { weight: 1, arbitrary: fc.constantFrom(60_000, 70_000, 1_000_000, 2_200_000).map((size) => JSON.stringify({ [names[0] ?? 'text']: 'x'.repeat(size) })) },
    { weight: 1, arbitrary: fc.constantFrom('', '{', '{"a":}', 'null', '"str"', '1', '[]', '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"x":1}}}') },
  );
  return fc.record({
    contentType: fc.oneof({ weight: 5, arbitrary: fc.constant('application/json') }, { weight: 3, arbitrary: fc.constantFrom(...CONTENT_TYPES) }, { weight: 1, arbitrary: fc.constant(undefined) }),
    contentEncoding: fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'bogus') }),
    body: fc.oneof({ weight: 8, arbitrary: text }, { weight: 1, arbitrary: fc.constant(undefined) }),
  });
}

/** Field names of a route's body schema (the keys of its object shape). */
export function fieldNamesOf(schema: z.ZodType | undefined): string[] {
  return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
}
