/**
 * Fuzzing helpers (issue 5): an API on a test database with an admin, a user, bots, a conversation and a guest;
 * raw HTTP requests (any method, path, header and body bytes); table checksums to prove refused requests changed
 * nothing; the Express route table; fast-check generators for hostile path parameters, query strings and bodies;
 * and the checks every response must pass.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { expect } from 'chai';
import type { Express } from 'express';
import fc from 'fast-check';
import type { Knex } from 'knex';
import { z } from 'zod';
import type { RouteSpec } from '../../api/openapi/registry.js';
import { apiTestConfig, startTestApi, type TestApi } from './api.js';
import { createBot, createConversation, postMessage, restOk, signedInUser, signOutAll, type SignedInUser } from './chat.js';
import { uniqueQueuePrefix } from './config.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { dropRedisKeys } from './redis.js';

// ---------------------------------------------------------------- the target

export interface FuzzTarget {
  api: TestApi;
  database: TestDatabase;
  admin: SignedInUser;
  user: SignedInUser;
  /** A private bot, a public bot, the user's conversation with the private bot, a message in it. */
  botId: string;
  publicBotId: string;
  conversationId: string;
  messageId: string;
  /** A guest token for a conversation with the public bot, and that conversation. */
  guestToken: string;
  guestConversationId: string;
  /** Sent as X-Forwarded-For (the API trusts loopback proxies here), so rate-limit and login-guard keys are ours alone. */
  clientIp: string;
  stop(): Promise<void>;
}

/** An API with high budgets, a short lockout, and a private client address; everything else as in production. */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  const database = await createTestDatabase();
  const prefix = uniqueQueuePrefix();
  const config = apiTestConfig(database.url, {
    LOG_LEVEL: 'error',
    BOTSERVER_RATE_LIMIT_PER_IP: '1000000',
    BOTSERVER_RATE_LIMIT_PER_USER: '1000000',
    BOTSERVER_MAX_LOGIN_ATTEMPTS: '1000',
    BOTSERVER_LOCKOUT_DURATION: '2',
    BOTSERVER_TRUST_PROXY: 'loopback',
  });
  const api = await startTestApi(config, prefix);
  const admin = await signedInUser(api, 'admin');
  const user = await signedInUser(api, 'user');
  const botId = await createBot(api.url, admin, { name: 'Fuzz private', greeting: 'Hello', rules: [{ match: 'ping', reply: 'pong' }] });
  const publicBotId = await createBot(api.url, admin, { name: 'Fuzz public', public: true });
  const conversationId = await createConversation(api.url, user, botId);
  const messageId = await postMessage(api.url, user.token, conversationId, 'hello there', 'fuzz-seed-1');
  const guest = await restOk('POST', `${api.url}/api/bots/${publicBotId}/guest-token`, 200);
  const clientIp = `198.18.${randomBytes(1)[0] ?? 1}.${1 + (randomBytes(1)[0] ?? 1) % 250}`;
  return {
    api,
    database,
    admin,
    user,
    botId,
    publicBotId,
    conversationId,
    messageId,
    guestToken: String(guest.token),
    guestConversationId: String(guest.conversationId),
    clientIp,
    async stop() {
      await signOutAll();
      await api.stop();
      await dropRedisKeys(config.redisUrl, [`${prefix}:*`, `botserver:login:*:${clientIp}`, `botserver:rl:*${clientIp}`, `botserver:rl:user*:${admin.id}`, `botserver:rl:user*:${user.id}`]);
      await database.destroy();
    },
  };
}

/** A fresh account of `role`, signed in: for routes whose success ends the caller's session or account. */
export async function disposableUser(target: FuzzTarget, role: 'user' | 'admin' = 'user'): Promise<{ token: string }> {
  return { token: (await signedInUser(target.api, role)).token };
}

// ---------------------------------------------------------------- raw requests

export interface RawRequest {
  method: string;
  /** Sent exactly as given (already encoded where it should be). */
  path: string;
  headers: Record<string, string>;
  body?: Buffer | string;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

/** One request with node:http: no URL normalisation, so `..`, `%2e` and malformed escapes reach the server as written. */
export function sendRaw(baseUrl: string, request: RawRequest): Promise<RawResponse> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: url.hostname, port: url.port, method: request.method, path: request.path, headers: request.headers, agent },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    // An explicit length: without it Node frames no body for GET/DELETE, and the bytes would poison the next request.
    if (request.body !== undefined && req.getHeader('content-length') === undefined) req.setHeader('content-length', Buffer.byteLength(request.body));
    req.end(request.body);
  });
}

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

// ---------------------------------------------------------------- what every response must look like

/** Traces of a stack trace, a file system path or a library's error text. */
const LEAK_MARKERS: ReadonlyArray<{ name: string; pattern: RegExp }> = [
  { name: 'stack frame', pattern: /\bat (?:[\w$.<>[\] ]+ )?\(?(?:file:\/\/|\/|node:)[^\s()]*:\d+:\d+\)?/ },
  { name: 'stack line', pattern: /\n\s+at \S/ },
  { name: 'node_modules path', pattern: /node_modules/ },
  { name: 'source path', pattern: /\/work\/|\/home\/|\.ts:\d+/ },
  { name: 'error with stack', pattern: /\b\w*Error: [^\n]*\n\s*at / },
  { name: 'PostgreSQL error', pattern: /invalid input syntax|violates|relation "|syntax error at or near|duplicate key/ },
];

export function findLeak(text: string): string | undefined {
  return LEAK_MARKERS.find(({ pattern }) => pattern.test(text))?.name;
}

const errorBodySchema = z.object({ error: z.string().min(1), message: z.string().min(1), requestId: z.string().min(8), field: z.string().optional() });

export function describeExchange(request: RawRequest, response: RawResponse): string {
  const body = typeof request.body === 'string' ? request.body : request.body?.toString('utf8');
  return `${request.method} ${request.path.slice(0, 300)} ${JSON.stringify(request.headers).slice(0, 300)} body=${JSON.stringify(body?.slice(0, 300))} -> ${response.status} ${response.text.slice(0, 500)}`;
}

/**
 * The perimeter's promise for one exchange: never a 5xx, never a leak, every error the standard JSON body, and a
 * success in the documented shape (JSON successes are parsed with the route's response schema). `reachedRoute`
 * false: the request may have landed on another route (an empty path parameter), so the success shape is not held
 * to this one's. Under a mount, only our own middleware's errors have the standard body: the sub-application's own
 * API (Bull Board's) answers in its format, still without 5xx or leaks.
 */
export function expectSafeResponse(spec: RouteSpec | undefined, request: RawRequest, response: RawResponse, reachedRoute = true): void {
  const context = describeExchange(request, response);
  expect(response.status, context).to.be.below(500);
  expect(findLeak(response.text), context).to.equal(undefined);
  const type = String(response.headers['content-type'] ?? '');
  if (response.status >= 400) {
    expect(type, context).to.match(/^application\/json/);
    const body: unknown = JSON.parse(response.text);
    if (spec?.mount === true && !errorBodySchema.safeParse(body).success) return;
    const parsed = errorBodySchema.safeParse(body);
    expect(parsed.success, context).to.equal(true);
    expect(response.headers['x-request-id'], context).to.equal(parsed.data?.requestId);
    return;
  }
  const success = spec?.success;
  if (!reachedRoute || spec?.mount === true || success === undefined || response.status !== success.status || success.schema === undefined) return;
  expect(type, context).to.match(/^application\/json/);
  const parsed = success.schema.safeParse(JSON.parse(response.text));
  expect(parsed.success, `${context}\n${parsed.error?.message ?? ''}`).to.equal(true);
}

// ---------------------------------------------------------------- database checksums

const EXCLUDED_TABLES = new Set([
  'knex_migrations',
  'knex_migrations_lock',
  // Refusals are meant to be recorded here (authz.denied, auth.login.failure); the audit suites check this table.
  'audit_events',
]);

export type Checksums = Record<string, string>;

/** Row count and an md5 over every row's text, per table, in one round trip (as the owner: no RLS). */
export async function tableChecksums(ownerDb: Knex): Promise<Checksums> {
  const tables = await ownerDb('information_schema.tables')
    .where({ table_schema: 'public', table_type: 'BASE TABLE' })
    .orderBy('table_name')
    .pluck<string[]>('table_name');
  const wanted = tables.filter((name) => !EXCLUDED_TABLES.has(name));
  const columns = wanted.map((name) => `(select count(*) || ':' || coalesce(md5(string_agg(t::text, ',' order by t::text)), '') from "${name.replaceAll('"', '""')}" t) as "${name.replaceAll('"', '""')}"`);
  const result = await ownerDb.raw<{ rows: Checksums[] }>(`select ${columns.join(', ')}`);
  return result.rows[0] ?? {};
}

// ---------------------------------------------------------------- the app's route table

interface RouterLayer {
  route?: { path: string | string[]; methods: Record<string, boolean | undefined> };
  handle: { stack?: RouterLayer[] };
  rawPath?: unknown;
  slash?: boolean;
}

export interface AppRouteTable {
  /** `METHOD path` of every route, Express path syntax. */
  routes: Set<string>;
  /** Prefixes where middleware or a sub-application (not a router of routes) is mounted below `/`. */
  mounts: Set<string>;
}

/** Walks Express 5's router stack: routers mounted at `/` are entered, anything mounted at a prefix is a mount. */
export function appRouteTable(app: Express): AppRouteTable {
  const table: AppRouteTable = { routes: new Set(), mounts: new Set() };
  const walk = (stack: RouterLayer[], prefix: string): void => {
    for (const layer of stack) {
      if (layer.route !== undefined) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const path of paths) {
          for (const [method, enabled] of Object.entries(layer.route.methods)) if (enabled === true && method !== '_all') table.routes.add(`${method.toUpperCase()} ${prefix}${path}`);
        }
      } else if (layer.slash === true && layer.handle.stack !== undefined) {
        walk(layer.handle.stack, prefix);
      } else if (layer.slash !== true && typeof layer.rawPath === 'string') {
        table.mounts.add(`${prefix}${layer.rawPath}`);
      }
    }
  };
  walk((app as unknown as { router: { stack: RouterLayer[] } }).router.stack, '');
  return table;
}

// ---------------------------------------------------------------- generators

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
