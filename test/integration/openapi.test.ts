import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { z } from 'zod';
import { createApp } from '../../api/app.js';
import { buildOpenApiDocument, jsonSchemaOf, openApiPath, pathParamNames, type JsonObject, type OpenApiDocument } from '../../api/openapi/document.js';
import { ROUTES, routesFor, type RouteSpec } from '../../api/openapi/registry.js';
import { loginSchema } from '../../api/routes/auth.js';
import { createBotSchema } from '../../api/routes/bots.js';
import { historySchema, sendSchema } from '../../api/conversations/schema.js';
import { joinSchema } from '../../api/socket/handlers.js';
import type { Config } from '../../shared/config/index.js';
import { createKernel, type Kernel } from '../../shared/kernel.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { createBot, createConversation, postMessage, restJson, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { appRouteTable, sendRaw, type AppRouteTable } from '../helpers/fuzz.js';
import { startOidcProvider } from '../helpers/oidc-provider.js';
import { dropRedisKeys } from '../helpers/redis.js';
import { uploadFile } from '../helpers/files.js';

const key = (route: RouteSpec): string => `${route.method.toUpperCase()} ${route.path}`;

/** The routes and mounts of the Express app `createApp` builds for `config`, on its own kernel. */
async function routeTableOf(config: Config): Promise<AppRouteTable> {
  const prefix = uniqueQueuePrefix();
  const kernel: Kernel = createKernel(config, 'api', { queuePrefix: prefix });
  try {
    const app = await createApp(kernel);
    await app.close();
    return appRouteTable(app.express);
  } finally {
    await kernel.close();
    await dropRedisKeys(config.redisUrl, [`${prefix}:*`]);
  }
}

/** Both directions: every app route is documented, every documented route exists; every mount is documented. */
function expectSameRoutes(table: AppRouteTable, routes: RouteSpec[]): void {
  const documented = new Set(routes.filter((route) => route.mount !== true).map(key));
  const undocumented = [...table.routes].filter((route) => !documented.has(route));
  expect(undocumented, 'Express routes missing from the route registry (api/openapi/registry.ts)').to.deep.equal([]);
  const underMount = (path: string): boolean => [...table.mounts].some((mount) => path === mount || path.startsWith(`${mount}/`));
  const phantom = routes.filter((route) => (route.mount === true ? !table.mounts.has(route.path) : !table.routes.has(key(route)) && !underMount(route.path))).map(key);
  expect(phantom, 'registry routes the app does not serve').to.deep.equal([]);
  const bareMounts = [...table.mounts].filter((mount) => !routes.some((route) => route.path === mount || route.path.startsWith(`${mount}/`)));
  expect(bareMounts, 'mounted sub-applications without a documented route').to.deep.equal([]);
}

/** Every `$ref` in the document, to check that each resolves. */
function refsOf(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) refsOf(item, found);
  else if (typeof node === 'object' && node !== null) {
    for (const [name, value] of Object.entries(node)) {
      if (name === '$ref' && typeof value === 'string') found.push(value);
      else refsOf(value, found);
    }
  }
  return found;
}

function operations(document: OpenApiDocument): Array<{ path: string; method: string; operation: JsonObject }> {
  return Object.entries(document.paths).flatMap(([path, item]) => Object.entries(item).map(([method, operation]) => ({ path, method, operation })));
}

describe('OpenAPI 3.1 document (/api/openapi.json)', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let document: OpenApiDocument;
  let admin: SignedInUser;

  before(async function () {
    this.timeout(120_000);
    database = await createTestDatabase();
    api = await startTestApi(apiTestConfig(database.url, { LOG_LEVEL: 'error' }));
    admin = await signedInUser(api, 'admin');
    const response = await sendRaw(api.url, { method: 'GET', path: '/api/openapi.json', headers: {} });
    document = JSON.parse(response.text) as OpenApiDocument;
  });

  after(async function () {
    await signOutAll();
    await api?.stop();
    await database?.destroy();
  });

  it('is served publicly, as JSON, cached for five minutes and revalidated by ETag', async () => {
    const response = await sendRaw(api.url, { method: 'GET', path: '/api/openapi.json', headers: {} });
    expect(response.status).to.equal(200);
    expect(response.headers['content-type']).to.match(/^application\/json/);
    expect(response.headers['cache-control']).to.equal('public, max-age=300');
    const etag = response.headers.etag;
    expect(etag).to.be.a('string');
    const again = await sendRaw(api.url, { method: 'GET', path: '/api/openapi.json', headers: { 'if-none-match': String(etag) } });
    expect(again.status).to.equal(304);
    // The same document with a bad bearer token: the route does not depend on (or check) credentials.
    const withBadToken = await sendRaw(api.url, { method: 'GET', path: '/api/openapi.json', headers: { authorization: 'Bearer nonsense' } });
    expect(withBadToken.status).to.equal(200);
    expect(JSON.parse(withBadToken.text)).to.deep.equal(document);
  });

  it('is an OpenAPI 3.1 document for botserver, with the package version, the root server and both security schemes', () => {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(document.openapi).to.equal('3.1.0');
    expect(document.jsonSchemaDialect).to.equal('https://json-schema.org/draft/2020-12/schema');
    expect(document.info).to.include({ title: 'botserver', version: manifest.version });
    expect(document.servers).to.deep.equal([{ url: '/' }]);
    const schemes = (document.components.securitySchemes ?? {}) as Record<string, JsonObject>;
    expect(schemes.bearerAuth).to.include({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    expect(schemes.cookieAuth).to.include({ type: 'apiKey', in: 'cookie', name: 'botserver_session' });
    expect(String(schemes.cookieAuth?.description)).to.include('x-csrf-token');
    expect(document).to.deep.equal(buildOpenApiDocument(api.config));
  });

  it('lists exactly the routes the Express app serves (its router stack, walked), and nothing more', async () => {
    expectSameRoutes(await routeTableOf(api.config), routesFor(api.config));
    const served = new Set(operations(document).map(({ path, method }) => `${method.toUpperCase()} ${path}`));
    expect(served).to.deep.equal(new Set(routesFor(api.config).map((route) => `${route.method.toUpperCase()} ${openApiPath(route.path)}`)));
  });

  it('with an OIDC issuer configured, lists the OIDC routes too, and still exactly the app\'s routes', async function () {
    this.timeout(120_000);
    const provider = await startOidcProvider();
    try {
      const config = apiTestConfig(database.url, { LOG_LEVEL: 'error', ZITADEL_DOMAIN: provider.issuer, ZITADEL_CLIENT_ID: provider.clientId, ZITADEL_CLIENT_SECRET: provider.clientSecret });
      expectSameRoutes(await routeTableOf(config), routesFor(config));
      const paths = Object.keys(buildOpenApiDocument(config).paths);
      expect(paths).to.include.members(['/auth/oidc/login', '/auth/oidc/callback']);
      expect(Object.keys(document.paths)).to.not.include('/auth/oidc/login');
    } finally {
      await provider.stop();
    }
  });

  it('describes each request from the zod schema its route parses with (same JSON Schema, nothing hand-written)', () => {
    const login = document.paths['/auth/login']?.post as { requestBody: { content: Record<string, { schema: unknown }> } } | undefined;
    expect(login?.requestBody.content['application/json']?.schema).to.deep.equal(jsonSchemaOf(loginSchema, 'input'));
    const bots = document.paths['/api/bots']?.post as { requestBody: { content: Record<string, { schema: unknown }> } } | undefined;
    expect(bots?.requestBody.content['application/json']?.schema).to.deep.equal(jsonSchemaOf(createBotSchema, 'input'));
    const send = document.paths['/api/conversations/{id}/messages']?.post as { requestBody: { content: Record<string, { schema: unknown }> } } | undefined;
    expect(send?.requestBody.content['application/json']?.schema).to.deep.equal(jsonSchemaOf(sendSchema, 'input'));
    const history = document.paths['/api/conversations/{id}/messages']?.get as { parameters: Array<{ name: string; in: string }> } | undefined;
    expect(history?.parameters.filter((parameter) => parameter.in === 'query').map((parameter) => parameter.name)).to.deep.equal(Object.keys(historySchema.shape));
    for (const route of routesFor(api.config)) {
      const operation = document.paths[openApiPath(route.path)]?.[route.method] as { requestBody?: { content: Record<string, { schema: unknown }> } } | undefined;
      expect(operation, key(route)).to.not.equal(undefined);
      if (route.body === undefined) expect(operation?.requestBody, key(route)).to.equal(undefined);
      else expect(operation?.requestBody?.content['application/json']?.schema, key(route)).to.deep.equal(jsonSchemaOf(route.body, 'input'));
    }
    const socket = document['x-socketio'] as { clientEvents: Record<string, { payload: unknown }> };
    expect(socket.clientEvents['conversation:join']?.payload).to.deep.equal(jsonSchemaOf(joinSchema, 'input'));
  });

  it('refuses unknown fields in every documented body, types every path id as a UUID, and gives every error the Error schema', () => {
    const errorSchema = (document.components.schemas as Record<string, JsonObject>).Error;
    expect(errorSchema?.required).to.have.members(['error', 'message', 'requestId']);
    expect(Object.keys(errorSchema?.properties ?? {})).to.have.members(['error', 'message', 'requestId', 'field']);
    const operationIds = new Set<string>();
    for (const { path, method, operation } of operations(document)) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(operationIds.has(String(operation.operationId)), where).to.equal(false);
      operationIds.add(String(operation.operationId));
      const body = (operation.requestBody as { content: Record<string, { schema: JsonObject }> } | undefined)?.content['application/json']?.schema;
      if (body !== undefined) expect(body.additionalProperties, where).to.equal(false);
      const params = ((operation.parameters ?? []) as Array<{ name: string; in: string; required: boolean; schema: JsonObject }>).filter((parameter) => parameter.in === 'path');
      expect(params.map((parameter) => parameter.name), where).to.deep.equal([...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]));
      for (const parameter of params) {
        expect(parameter.required, where).to.equal(true);
        if (parameter.name === 'id') expect(parameter.schema.format, where).to.equal('uuid');
      }
      const responses = operation.responses as Record<string, { content?: Record<string, { schema: JsonObject }> }>;
      expect(Object.keys(responses).some((status) => status.startsWith('2') || status.startsWith('3')), where).to.equal(true);
      expect(responses['500'], where).to.not.equal(undefined);
      for (const [status, response] of Object.entries(responses)) {
        if (Number(status) >= 400 && !(path === '/readyz' && status === '503')) expect(response.content?.['application/json']?.schema, `${where} ${status}`).to.deep.equal({ $ref: '#/components/schemas/Error' });
      }
      const security = operation.security as unknown[];
      if (operation['x-botserver-access'] === 'public') expect(security, where).to.deep.equal([]);
      else expect(security, where).to.not.be.empty;
    }
    for (const ref of refsOf(document)) {
      const target = ref.replace(/^#\//, '').split('/').reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], document);
      expect(target, ref).to.not.equal(undefined);
    }
  });

  it('gives a valid example for every body and query it documents one for', () => {
    for (const route of ROUTES) {
      if (route.bodyExample !== undefined) expect(route.body?.safeParse(route.bodyExample).success, key(route)).to.equal(true);
      if (route.queryExample !== undefined) expect(route.query?.safeParse(route.queryExample).success, key(route)).to.equal(true);
      expect(pathParamNames(route.path).every((name) => !name.includes('-')), key(route)).to.equal(true);
    }
  });

  it('matches what the routes answer: each success, as an admin, parses with its documented response schema', async () => {
    const botId = await createBot(api.url, admin, { name: 'Doc bot', public: true, greeting: 'Hi', rules: [{ match: 'a', reply: 'b' }] });
    const conversationId = await createConversation(api.url, admin, botId);
    await postMessage(api.url, admin.token, conversationId, 'hello', 'doc-1');
    const upload = await uploadFile(api.url, admin.token, 'doc.txt', Buffer.from('documented\n'));
    expect(upload.status, upload.body.toString()).to.equal(202);
    const fileId = String((JSON.parse(upload.body.toString()) as { id: string }).id);
    const ids: Record<string, string> = {
      '/api/bots/:id': botId,
      '/api/bots/:id/email/quarantine': botId,
      '/api/bots/:id/knowledge': botId,
      '/api/bots/:id/knowledge/search': botId,
      '/api/conversations/:id': conversationId,
      '/api/conversations/:id/messages': conversationId,
      '/api/files/:id': fileId,
    };
    // A browser session too, for the cookie-only route.
    const login = await sendRaw(api.url, { method: 'POST', path: '/auth/login?cookie=1', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: admin.email, password: admin.password }) });
    const cookie = (login.headers['set-cookie'] ?? []).map((line) => line.split(';')[0]).join('; ');
    const csrf = String((JSON.parse(login.text) as { csrfToken?: string }).csrfToken);
    const checked: string[] = [];
    for (const route of routesFor(api.config).filter((candidate) => candidate.method === 'get' && candidate.success.schema !== undefined && candidate.mount !== true)) {
      const path = `${route.path.replace(':id', ids[route.path] ?? '')}${route.queryExample === undefined ? '' : `?${new URLSearchParams(route.queryExample).toString()}`}`;
      const headers: Record<string, string> = route.access === 'cookie' ? { cookie, 'x-csrf-token': csrf } : { authorization: `Bearer ${admin.token}` };
      const reply = await sendRaw(api.url, { method: 'GET', path, headers });
      // This server runs without vectordb: the knowledge routes say so, as documented (their successes are tested in knowledge.test.ts).
      if (route.tag === 'knowledge' && reply.status === 409 && (JSON.parse(reply.text) as { error: string }).error === 'feature_disabled') continue;
      expect(reply.status, `${key(route)}: ${reply.text.slice(0, 300)}`).to.equal(route.success.status);
      const parsed = (route.success.schema as z.ZodType).safeParse(JSON.parse(reply.text));
      expect(parsed.success, `${key(route)}: ${parsed.error?.message ?? ''}`).to.equal(true);
      checked.push(key(route));
    }
    expect(checked).to.include.members(['GET /api/files/:id', 'GET /auth/socket-token', 'GET /api/me', 'GET /api/bots', 'GET /api/bots/:id', 'GET /api/conversations/:id/messages', 'GET /.well-known/jwks.json', 'GET /api/audit']);
    const created = await restJson('POST', `${api.url}/api/bots/${botId}/guest-token`, {});
    const guestRoute = ROUTES.find((route) => key(route) === 'POST /api/bots/:id/guest-token');
    expect(guestRoute?.success.schema?.safeParse(created.body).success).to.equal(true);
  });
});
