import { expect } from 'chai';
import fc from 'fast-check';
import { openApiPath, pathParamNames, type OpenApiDocument } from '../../api/openapi/document.js';
import { ROUTES, type RouteSpec } from '../../api/openapi/registry.js';
import {
  bodyArb, disposableUser, encodeComponent, expectSafeResponse, fieldNamesOf, INJECTION, leafAt, leafPaths, pathParamArb, queryArb, rawEncode, replaceAt, sendRaw, startFuzzTarget, staysOnRoute,
  STORAGE_HOSTILE, tableChecksums, TRAVERSAL, type BodyCase, type Checksums, type FuzzTarget, type RawRequest,
} from '../helpers/fuzz.js';

/**
 * Property-based fuzzing of every route in the OpenAPI document: random JSON, strings, sizes, content types, path
 * parameters, query strings and credentials. Whatever comes in: no 5xx, no stack trace or library text, every error
 * the standard `{error,message,requestId}` body, every success in its documented shape, and a refused request (4xx)
 * changes no row in any table.
 */

type AuthMode = 'none' | 'user' | 'admin' | 'guest' | 'bogus' | 'cookie';
/** The suite's own admin and user most often (they reach the handlers); the rest are refused at the door. */
const authMode: fc.Arbitrary<AuthMode> = fc.oneof(
  { weight: 4, arbitrary: fc.constant('admin' as const) },
  { weight: 3, arbitrary: fc.constant('user' as const) },
  { weight: 1, arbitrary: fc.constantFrom('none' as const, 'guest' as const, 'bogus' as const, 'cookie' as const) },
);

/** A success here ends the caller's session or account: fuzzed as disposable accounts, never as the suite's own. */
const ENDS_CALLER = new Set(['POST /auth/logout', 'DELETE /api/me']);
/**
 * A success here ends the sessions of the account its path names: the suite's own admin is never among the ids it
 * is given (an admin may end their own sessions, and the suite would lose its caller).
 */
const ENDS_NAMED_ACCOUNT = new Set(['DELETE /api/users/:id/sessions']);
/** Each valid-looking attempt costs an Argon2 verification (or a hash): fewer runs. */
const SLOW = new Set(['POST /auth/login', 'POST /auth/password', 'DELETE /api/me', 'POST /auth/logout', 'POST /api/users']);
const RUNS = 30;
const SLOW_RUNS = 20;
/** A new account (Argon2 hash and login) for most runs. */
const DISPOSABLE_RUNS = 12;

const METHOD_ORDER = ['get', 'post', 'put', 'patch', 'delete'];
/** Reads first and deletions last, so the seeded bots and conversations live as long as possible. */
const ORDERED_ROUTES = [...ROUTES].sort((a, b) => METHOD_ORDER.indexOf(a.method) - METHOD_ORDER.indexOf(b.method));

const routeKey = (route: RouteSpec): string => `${route.method.toUpperCase()} ${route.path}`;

interface FuzzCase {
  auth: AuthMode;
  bogusCredential: string;
  params: string[];
  suffix: string;
  method: string;
  query: string;
  body: BodyCase;
}

const bogusCredential = fc.oneof(
  fc.constantFrom('Bearer', 'Bearer ', 'Basic YWRtaW46YWRtaW4=', 'Bearer a.b.c', 'Bearer eyJhbGciOiJub25lIn0.e30.', 'Bearer eyJ0eXAiOiJndWVzdCtqd3QiLCJhbGciOiJub25lIn0.e30.'),
  fc.string({ maxLength: 200 }).map((text) => `Bearer ${text}`),
  fc.string({ unit: 'binary', maxLength: 60 }),
);

function caseArb(target: FuzzTarget, route: RouteSpec): fc.Arbitrary<FuzzCase> {
  const ownAccount = ENDS_NAMED_ACCOUNT.has(routeKey(route)) ? [] : [target.admin.id];
  const realIds = [target.botId, target.publicBotId, target.conversationId, target.guestConversationId, target.messageId, ...ownAccount];
  const params = pathParamNames(route.path).map((name) => (name === 'file' ? fc.oneof(fc.constantFrom('app.css', 'favicon.svg', 'index.html', 'widget.js'), pathParamArb(TRAVERSAL)) : pathParamArb(realIds)));
  const suffix = route.mount === true
    ? fc.oneof(fc.constant(''), fc.constantFrom('/', '/api/queues', '/api/queues/bot-reply', '/api/queues/nope/retry/failed', '/api/redis/stats', '/static/../../../package.json'), pathParamArb([]).map((part) => `/${part}`))
    : fc.constant('');
  const method = route.mount === true ? fc.constantFrom('GET', 'PUT', 'POST', 'DELETE') : fc.constant(route.method.toUpperCase());
  const queryNames = route.query === undefined ? [] : Object.keys(route.query.shape);
  return fc.record({
    auth: authMode,
    bogusCredential,
    params: fc.tuple(...params),
    suffix,
    method,
    query: queryArb(queryNames, route.queryExample),
    body: bodyArb(fieldNamesOf(route.body), route.bodyExample),
  });
}

async function credentialsFor(target: FuzzTarget, route: RouteSpec, fuzz: FuzzCase): Promise<Record<string, string>> {
  switch (fuzz.auth) {
    case 'none':
      return {};
    case 'bogus':
      return { authorization: rawEncode(fuzz.bogusCredential) };
    case 'cookie':
      return { cookie: `botserver_session=${rawEncode(fuzz.bogusCredential)}; botserver_csrf=x`, 'x-csrf-token': 'x' };
    case 'guest':
      return { authorization: `Bearer ${target.guestToken}` };
    case 'user':
    case 'admin': {
      const token = ENDS_CALLER.has(routeKey(route)) ? (await disposableUser(target, fuzz.auth)).token : target[fuzz.auth].token;
      return { authorization: `Bearer ${token}` };
    }
  }
}

function buildPath(route: RouteSpec, fuzz: FuzzCase): string {
  let index = 0;
  const path = route.path.replace(/:([A-Za-z0-9_]+)/g, () => fuzz.params[index++] ?? '');
  return `${path}${fuzz.suffix}${fuzz.query}`;
}

describe('fuzz: every HTTP route of the OpenAPI document', function () {
  this.timeout(180_000);
  let target: FuzzTarget;
  let documented: Set<string>;
  let checksums: Checksums;
  const fuzzed = new Set<string>();
  const statuses = new Map<number, number>();

  before(async function () {
    this.timeout(120_000);
    target = await startFuzzTarget({ oidc: true });
    const response = await sendRaw(target.api.url, { method: 'GET', path: '/api/openapi.json', headers: {} });
    const document = JSON.parse(response.text) as OpenApiDocument;
    documented = new Set(Object.entries(document.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`)));
    checksums = await tableChecksums(target.database.ownerDb);
  });

  after(async function () {
    this.timeout(60_000);
    const summary = [...statuses.entries()].sort(([a], [b]) => a - b).map(([status, count]) => `${status}×${count}`).join(' ');
    if (summary !== '') console.log(`      statuses: ${summary}`);
    await target?.stop();
  });

  /** One exchange: sent, checked, and for a refusal the tables compared with the state before it. */
  async function exchange(route: RouteSpec | undefined, request: RawRequest, reachedRoute = true): Promise<void> {
    const before = checksums;
    const response = await sendRaw(target.api.url, request);
    statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
    checksums = await tableChecksums(target.database.ownerDb);
    expectSafeResponse(route, request, response, reachedRoute);
    if (response.status >= 400) {
      expect(checksums, `a refused request changed rows: ${request.method} ${request.path.slice(0, 200)} -> ${response.status} ${response.text.slice(0, 200)}`).to.deep.equal(before);
    }
  }

  /** A request as the admin (JSON unless told otherwise); the tables must not change when it is refused. */
  async function asAdmin(method: string, path: string, body: string | Buffer | undefined, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
    const request: RawRequest = { method, path, headers: { 'x-forwarded-for': target.clientIp, authorization: `Bearer ${target.admin.token}`, 'content-type': 'application/json', ...headers }, ...(body === undefined ? {} : { body }) };
    const before = checksums;
    const response = await sendRaw(target.api.url, request);
    checksums = await tableChecksums(target.database.ownerDb);
    expectSafeResponse(undefined, request, response);
    if (response.status >= 400) expect(checksums, `${method} ${path} changed rows before refusing`).to.deep.equal(before);
    return { status: response.status, body: JSON.parse(response.text) as Record<string, unknown> };
  }

  describe('the edges the fuzzing found or guards, one by one', () => {
    it('malformed JSON: 400 invalid_json', async () => {
      const reply = await asAdmin('POST', '/api/bots', '{"name":');
      expect(reply.status).to.equal(400);
      expect(reply.body).to.include({ error: 'invalid_json', message: 'The request body is not valid JSON' });
    });

    it('a body that is not JSON: 415 unsupported_media_type, whatever the route (multipart only where uploads go)', async () => {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml']) {
        const reply = await asAdmin('POST', '/api/bots', '{"name":"sneaky"}', { 'content-type': type });
        expect(reply.status, type).to.equal(415);
        expect(reply.body.error, type).to.equal('unsupported_media_type');
      }
      const noType = await asAdmin('POST', `/api/bots/${target.botId}/conversations`, 'x=1', { 'content-type': '' });
      expect(noType.status).to.equal(415);
    });

    it('an unsupported charset or a broken content encoding: 4xx, never the 500 a zlib error used to give', async () => {
      expect((await asAdmin('POST', '/api/bots', '{"name":"x"}', { 'content-type': 'application/json; charset=latin1' })).body.error).to.equal('unsupported_encoding');
      const gzip = await asAdmin('POST', '/api/bots', 'definitely not gzip', { 'content-encoding': 'gzip' });
      expect(gzip.status).to.equal(400);
      expect(gzip.body.message).to.not.match(/zlib|header|incorrect/i);
    });

    it('size limits per route: 64 KiB for a message, 2 MiB for a bot (a maximal bot fits), 413 payload_too_large beyond', async () => {
      const message = await asAdmin('POST', `/api/conversations/${target.conversationId}/messages`, JSON.stringify({ text: 'x'.repeat(70_000) }));
      expect(message).to.deep.include({ status: 413 });
      expect(message.body.error).to.equal('payload_too_large');
      const rules = Array.from({ length: 100 }, (_, index) => ({ match: `${index}${'m'.repeat(190)}`, reply: 'r'.repeat(4000) }));
      const maximal = await asAdmin('POST', '/api/bots', JSON.stringify({ name: 'Maximal', greeting: 'g'.repeat(2000), rules, llm: { systemPrompt: 's'.repeat(8000) } }));
      expect(maximal.status, JSON.stringify(maximal.body).slice(0, 200)).to.equal(201);
      const huge = await asAdmin('POST', '/api/bots', JSON.stringify({ name: 'Huge', greeting: 'g'.repeat(2_200_000) }));
      expect(huge.status).to.equal(413);
    });

    it('text PostgreSQL cannot store (NUL, lone surrogates) in any field: 400 naming the field, not a 500', async () => {
      const name = await asAdmin('POST', '/api/bots', JSON.stringify({ name: 'a\u0000b' }));
      expect(name.status).to.equal(400);
      expect(name.body.field).to.equal('name');
      const rule = await asAdmin('POST', '/api/bots', JSON.stringify({ name: 'ok', rules: [{ match: 'x\ud800', reply: 'y' }] }));
      expect(rule.body.field).to.equal('rules.0.match');
      const prompt = await asAdmin('PATCH', `/api/bots/${target.botId}`, JSON.stringify({ llm: { systemPrompt: '\udc00' } }));
      expect(prompt.body.field).to.equal('llm.systemPrompt');
      const clientId = await asAdmin('POST', `/api/conversations/${target.conversationId}/messages`, JSON.stringify({ text: 'hi', clientMessageId: 'x\u0000' }));
      expect(clientId.body.field).to.equal('clientMessageId');
    });

    it('a malformed escape in a path parameter: 400 with our message (the router\'s "Failed to decode param" never shows)', async () => {
      const reply = await asAdmin('GET', '/api/bots/%ZZ', undefined);
      expect(reply.status).to.equal(400);
      expect(reply.body).to.include({ error: 'invalid_request', message: 'The request is malformed' });
    });

    it('traversal out of /assets: a JSON 4xx from us, never a file and never serve-static\'s own error', async () => {
      for (const path of ['/assets/..%2f..%2fpackage.json', '/assets/%2e%2e/%2e%2e/package.json', '/assets/..%5c..%5cpackage.json', '/assets/%00', '/assets/.env']) {
        const reply = await asAdmin('GET', path, undefined);
        expect(reply.status, path).to.be.oneOf([403, 404]);
      }
    });
  });

  /** The request a legitimate caller would make: its own resource ids and its own credentials. */
  function naturalRequest(route: RouteSpec, body: unknown, query: Record<string, string> | undefined): RawRequest {
    const id = route.path.startsWith('/api/conversations/') ? target.conversationId : target.botId;
    const path = route.path.replace(/:([A-Za-z0-9_]+)/g, (_match, name: string) => (name === 'file' ? 'app.css' : id));
    const caller = route.access === 'public' ? undefined : route.access === 'user' || route.access === 'participant' ? target.user : target.admin;
    const headers: Record<string, string> = { 'x-forwarded-for': target.clientIp, 'content-type': 'application/json' };
    if (caller !== undefined) headers.authorization = `Bearer ${caller.token}`;
    const search = query === undefined ? '' : `?${new URLSearchParams(query).toString()}`;
    return { method: route.method.toUpperCase(), path: `${path}${search}`, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) };
  }

  // Before the random runs, which may delete the seeded bot.
  it('every route that takes a body refuses an unknown field (400 naming it) before changing anything', async () => {
    const refusedWith: string[] = [];
    for (const route of ORDERED_ROUTES.filter((candidate) => candidate.method !== 'get' && candidate.mount !== true && documented.has(`${candidate.method.toUpperCase()} ${openApiPath(candidate.path)}`))) {
      const natural = naturalRequest(route, { ...route.bodyExample, unexpectedField: true }, route.queryExample);
      if (ENDS_CALLER.has(routeKey(route))) {
        natural.headers.authorization = `Bearer ${(await disposableUser(target)).token}`;
        checksums = await tableChecksums(target.database.ownerDb);
      }
      const response = await sendRaw(target.api.url, natural);
      const before = checksums;
      checksums = await tableChecksums(target.database.ownerDb);
      expect(checksums, `${routeKey(route)} changed rows before refusing`).to.deep.equal(before);
      expect(response.status, `${routeKey(route)}: ${response.text}`).to.equal(400);
      expect(JSON.parse(response.text)).to.include({ error: 'invalid_request', field: 'unexpectedField' });
      refusedWith.push(routeKey(route));
    }
    expect(refusedWith).to.include.members(['POST /auth/login', 'POST /auth/logout', 'POST /api/bots/:id/conversations', 'DELETE /api/bots/:id', 'DELETE /api/me']);
  });

  it('every string field of every documented example, with NUL, lone surrogates, controls and quotes: never a 5xx', async () => {
    // Exhaustive where the random runs are only likely: each text leaf of each example body and query, each hostile piece.
    let sent = 0;
    for (const route of ORDERED_ROUTES.filter((candidate) => !ENDS_CALLER.has(routeKey(candidate)) && documented.has(`${candidate.method.toUpperCase()} ${openApiPath(candidate.path)}`))) {
      const body = route.bodyExample;
      for (const path of body === undefined ? [] : leafPaths(body).filter((leaf) => typeof leafAt(body, leaf) === 'string')) {
        for (const piece of STORAGE_HOSTILE) {
          await exchange(route, naturalRequest(route, replaceAt(body, path, `${String(leafAt(body, path))}${piece}`), route.queryExample));
          sent += 1;
        }
      }
      for (const name of Object.keys(route.queryExample ?? {})) {
        for (const piece of STORAGE_HOSTILE) {
          await exchange(route, naturalRequest(route, body, { ...route.queryExample, [name]: `${route.queryExample?.[name] ?? ''}${piece}` }));
          sent += 1;
        }
      }
    }
    expect(sent).to.be.above(100);
  });

  it('every path parameter of every route, as each traversal and injection string (raw and encoded): never a 5xx', async () => {
    let sent = 0;
    for (const route of ORDERED_ROUTES.filter((candidate) => pathParamNames(candidate.path).length > 0 && !ENDS_CALLER.has(routeKey(candidate)))) {
      for (const hostile of [...TRAVERSAL, ...INJECTION]) {
        for (const encoded of new Set([rawEncode(hostile), encodeComponent(hostile)])) {
          const natural = naturalRequest(route, route.bodyExample, route.queryExample);
          await exchange(route, { ...natural, path: natural.path.replace(/\/[0-9a-f-]{36}|\/app\.js/, `/${encoded}`) }, staysOnRoute(encoded));
          sent += 1;
        }
      }
    }
    expect(sent).to.be.above(100);
  });

  for (const route of ORDERED_ROUTES) {
    const key = routeKey(route);
    it(`${key}: never a 5xx, a leak or a changed row`, async () => {
      // The target mounts every optional route (OIDC included), so every registry route must be in its document.
      const documentedKey = `${route.method.toUpperCase()} ${openApiPath(route.path)}`;
      expect(documented.has(documentedKey), `${documentedKey} is in the registry but not in the served document`).to.equal(true);
      fuzzed.add(documentedKey);
      await fc.assert(
        fc.asyncProperty(caseArb(target, route), async (fuzz) => {
          const headers: Record<string, string> = { 'x-forwarded-for': target.clientIp, ...(await credentialsFor(target, route, fuzz)) };
          // A disposable account was just created: that is the state the request starts from.
          if (ENDS_CALLER.has(key) && (fuzz.auth === 'user' || fuzz.auth === 'admin')) checksums = await tableChecksums(target.database.ownerDb);
          if (fuzz.body.contentType !== undefined) headers['content-type'] = fuzz.body.contentType;
          if (fuzz.body.contentEncoding !== undefined) headers['content-encoding'] = fuzz.body.contentEncoding;
          const request = { method: fuzz.method, path: buildPath(route, fuzz), headers, ...(fuzz.body.body === undefined ? {} : { body: fuzz.body.body }) };
          await exchange(route, request, fuzz.params.every(staysOnRoute));
        }),
        { numRuns: ENDS_CALLER.has(key) ? DISPOSABLE_RUNS : SLOW.has(key) ? SLOW_RUNS : RUNS },
      );
    });
  }

  it('unknown paths, methods and malformed URLs: 404/4xx JSON, never a 5xx', async () => {
    const segment = fc.oneof(fc.constantFrom(...TRAVERSAL, 'api', 'auth', 'assets', 'admin', '%ZZ', '%00', '', '.', '..'), fc.string({ maxLength: 20 }).map(rawEncode));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'TRACE'), fc.array(segment, { minLength: 1, maxLength: 6 }), async (method, segments) => {
        await exchange(undefined, { method, path: `/${segments.join('/')}`, headers: { 'x-forwarded-for': target.clientIp } });
      }),
      { numRuns: 150 },
    );
  });

  it('fuzzed every operation of the served document', () => {
    // When this fails, the document has an operation the registry walk above did not fuzz.
    expect([...documented].filter((operation) => !fuzzed.has(operation))).to.deep.equal([]);
    expect(fuzzed.size).to.equal(documented.size);
  });
});
