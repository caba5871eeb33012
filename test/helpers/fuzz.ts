/**
 * Fuzzing helpers (issue 5): an API on a test database with an admin, a user, bots, a conversation and a guest;
 * raw HTTP requests (any method, path, header and body bytes); table checksums to prove refused requests changed
 * nothing; the Express route table (the generators are in fuzz-arbitraries.ts, re-exported here);
 * and the checks every response must pass.
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { expect } from 'chai';
import type { Express } from 'express';
import type { Knex } from 'knex';
import { z } from 'zod';
import type { RouteSpec } from '../../api/openapi/registry.js';
import { apiTestConfig, startTestApi, type TestApi } from './api.js';
import { createBot, createConversation, postMessage, restOk, signedInUser, signOutAll, type SignedInUser } from './chat.js';
import { uniqueQueuePrefix } from './config.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { startOidcProvider } from './oidc-provider.js';
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

/**
 * An API with high budgets, a short lockout, and a private client address; everything else as in production. With
 * `oidc`, a real local OIDC provider too, so the OIDC routes are mounted (and fuzzed).
 */
export async function startFuzzTarget(options: { oidc?: boolean } = {}): Promise<FuzzTarget> {
  const database = await createTestDatabase();
  const provider = options.oidc === true ? await startOidcProvider() : undefined;
  const prefix = uniqueQueuePrefix();
  const config = apiTestConfig(database.url, {
    ...(provider === undefined ? {} : { ZITADEL_DOMAIN: provider.issuer, ZITADEL_CLIENT_ID: provider.clientId, ZITADEL_CLIENT_SECRET: provider.clientSecret }),
    LOG_LEVEL: 'error',
    BOTSERVER_RATE_LIMIT_PER_IP: '1000000',
    BOTSERVER_RATE_LIMIT_PER_USER: '1000000',
    BOTSERVER_MAX_LOGIN_ATTEMPTS: '1000',
    BOTSERVER_LOCKOUT_DURATION: '2',
    BOTSERVER_TRUST_PROXY: 'loopback',
  });
  const api = await startTestApi(config, prefix);
  provider?.allowRedirectUri(`${api.url}/auth/oidc/callback`);
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
      await provider?.stop();
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
  expect(findLeak(response.text), context).to.equal(undefined);
  const type = String(response.headers['content-type'] ?? '');
  // A documented 5xx (readiness 503 while a dependency is slow) is an answer, not a failure: it must be the documented body.
  const documented = spec?.failures?.find((failure) => failure.status === response.status && failure.status >= 500);
  if (documented?.schema !== undefined) {
    expect(documented.schema.safeParse(JSON.parse(response.text)).success, context).to.equal(true);
    return;
  }
  expect(response.status, context).to.be.below(500);
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

export * from './fuzz-arbitraries.js';
