import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Config } from '../../shared/config/index.js';
import { CSRF_HEADER, SESSION_COOKIE } from '../auth/authenticate.js';
import { joinSchema, sendSchema as socketSendSchema } from '../socket/handlers.js';
import { routesFor, type Access, type ResponseSpec, type RouteSpec } from './registry.js';
import { errorSchema } from './schemas.js';

/** The OpenAPI 3.1 document of the HTTP API, built from the route registry and the routes' own zod schemas. */

export type JsonObject = Record<string, unknown>;

export interface OpenApiDocument extends JsonObject {
  openapi: string;
  info: JsonObject & { title: string; version: string };
  paths: Record<string, Record<string, JsonObject>>;
  components: JsonObject;
}

const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';
const ERROR_REF = { $ref: '#/components/schemas/Error' };
/** What the routes accept as an id (any 8-4-4-4-12 hex form, like isUuid); anything else is 404 before a lookup. */
const UUID_PARAM = z.guid();

function packageVersion(): string {
  const manifest: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  return z.object({ version: z.string() }).parse(manifest).version;
}

/** JSON Schema 2020-12 of a zod schema: `input` for what clients send, `output` for what they receive. */
export function jsonSchemaOf(schema: z.ZodType, io: 'input' | 'output'): JsonObject {
  const generated: JsonObject = { ...z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) };
  // Inside an OpenAPI 3.1 document the dialect is declared once, at the top.
  delete generated.$schema;
  return generated;
}

/** `/api/bots/:id` → `/api/bots/{id}`. */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

export function pathParamNames(expressPath: string): string[] {
  return [...expressPath.matchAll(/:([A-Za-z0-9_]+)/g)].map((match) => match[1] ?? '');
}

function operationId(route: RouteSpec): string {
  const words = route.path.split(/[^A-Za-z0-9]+/).filter((word) => word !== '');
  return [route.method, ...words].map((word, index) => (index === 0 ? word : `${word.charAt(0).toUpperCase()}${word.slice(1)}`)).join('');
}

const SECURITY: Record<Access, JsonObject[]> = {
  public: [],
  user: [{ bearerAuth: [] }, { cookieAuth: [] }],
  participant: [{ bearerAuth: [] }, { cookieAuth: [] }],
  staff: [{ bearerAuth: [] }, { cookieAuth: [] }],
  admin: [{ bearerAuth: [] }, { cookieAuth: [] }],
  cookie: [{ cookieAuth: [] }],
  metrics: [{ bearerAuth: [] }],
};

const WHO: Record<Access, string> = {
  public: 'Anyone.',
  user: 'A signed-in account.',
  participant: "The conversation's user or guest (guest token); staff of the tenant may read.",
  staff: 'Admins and operators of the tenant.',
  admin: 'Admins of the tenant.',
  cookie: 'A browser cookie session with its X-CSRF-Token header.',
  metrics: 'An admin access token or the scrape token (BOTSERVER_METRICS_TOKEN).',
};

function parameters(route: RouteSpec): JsonObject[] {
  const path = pathParamNames(route.path).map((name) => ({
    name,
    in: 'path',
    required: true,
    schema: jsonSchemaOf(route.params?.[name] ?? UUID_PARAM, 'input'),
    ...(route.params?.[name] === undefined ? { description: 'A UUID; anything else is answered 404 before any lookup' } : {}),
  }));
  const query: JsonObject[] = [];
  if (route.query !== undefined) {
    const schema = jsonSchemaOf(route.query, 'input');
    const properties = (schema.properties ?? {}) as Record<string, JsonObject>;
    const required = new Set((schema.required ?? []) as string[]);
    for (const [name, property] of Object.entries(properties)) {
      const { description, ...propertySchema } = property;
      const example = route.queryExample?.[name];
      query.push({ name, in: 'query', required: required.has(name), schema: propertySchema, ...(typeof description === 'string' ? { description } : {}), ...(example === undefined ? {} : { example }) });
    }
  }
  return [...path, ...query];
}

function responseObject(spec: ResponseSpec, error: boolean): JsonObject {
  if (spec.schema !== undefined) return { description: spec.description, content: { 'application/json': { schema: jsonSchemaOf(spec.schema, 'output') } } };
  if (spec.contentType !== undefined) return { description: spec.description, content: { [spec.contentType]: { schema: { type: 'string' } } } };
  if (error) return { description: spec.description, content: { 'application/json': { schema: ERROR_REF } } };
  return { description: spec.description };
}

/** The failures every route of its kind can answer, each with the standard error body. */
function standardFailures(route: RouteSpec): ResponseSpec[] {
  const failures: ResponseSpec[] = [];
  const takesBody = route.method !== 'get';
  const hasParams = pathParamNames(route.path).length > 0;
  if (takesBody || route.query !== undefined || route.body !== undefined) {
    failures.push({ status: 400, description: '`invalid_request` (with `field`): input refused by its schema, unknown fields included; `invalid_json`: malformed JSON' });
  }
  if (route.access !== 'public') {
    failures.push({ status: 401, description: '`unauthorized`: no or no longer valid credentials' });
    failures.push({ status: 403, description: '`forbidden` (role), `csrf_failed`, `password_change_required` or `mfa_enrollment_required`' });
  }
  if (hasParams) failures.push({ status: 404, description: '`not_found`: no such resource in the caller\'s tenant (also for a malformed id)' });
  if (takesBody) {
    failures.push({ status: 413, description: '`payload_too_large`: the JSON body is over its limit' });
    failures.push({ status: 415, description: '`unsupported_media_type`: the body is not JSON; `unsupported_encoding`: charset or content encoding' });
  }
  if (route.unlimited !== true) failures.push({ status: 429, description: '`rate_limited`, with Retry-After' });
  failures.push({ status: 500, description: '`internal_error`: logged with the request id; never a stack trace' });
  return failures;
}

function operation(route: RouteSpec): JsonObject {
  const responses: Record<string, JsonObject> = { [String(route.success.status)]: responseObject(route.success, false) };
  const failures = new Map<number, ResponseSpec>();
  for (const failure of standardFailures(route)) failures.set(failure.status, failure);
  for (const failure of route.failures ?? []) {
    const standard = failures.get(failure.status);
    failures.set(failure.status, standard === undefined ? failure : { ...failure, description: `${failure.description}; ${standard.description}` });
  }
  for (const [status, failure] of [...failures.entries()].sort(([a], [b]) => a - b)) {
    responses[String(status)] = responseObject(failure, status >= 400);
  }
  const description = [route.description, `Who: ${WHO[route.access]}`, route.mount === true ? 'A mount: the sub-application also answers every path below this one.' : undefined]
    .filter((line): line is string => line !== undefined)
    .join('\n\n');
  const params = parameters(route);
  return {
    operationId: operationId(route),
    summary: route.summary,
    description,
    tags: [route.tag],
    security: SECURITY[route.access],
    ...(params.length > 0 ? { parameters: params } : {}),
    ...(route.body === undefined
      ? {}
      : {
          requestBody: {
            required: !route.body.safeParse({}).success,
            content: { 'application/json': { schema: jsonSchemaOf(route.body, 'input'), ...(route.bodyExample === undefined ? {} : { example: route.bodyExample }) } },
          },
        }),
    responses,
    'x-botserver-access': route.access,
    ...(route.mount === true ? { 'x-botserver-mount': true } : {}),
  };
}

/** Socket.IO events (CONTRACT §4), from the handlers' own schemas; not HTTP, so an extension of the document. */
function socketEvents(): JsonObject {
  const ack = { oneOf: [{ type: 'object', properties: { ok: { const: true }, messageId: { type: 'string', format: 'uuid' } }, required: ['ok'] }, { type: 'object', properties: { ok: { const: false }, error: { type: 'string' } }, required: ['ok', 'error'] }] };
  return {
    path: '/socket.io',
    auth: 'handshake `auth: { token }` with an access JWT or a guest token; refused with connect_error `unauthorized`',
    clientEvents: {
      'conversation:join': { payload: jsonSchemaOf(joinSchema, 'input'), ack },
      'message:send': { payload: jsonSchemaOf(socketSendSchema, 'input'), ack },
    },
    serverEvents: ['message:new', 'message:chunk', 'message:error'],
    abuse: 'invalid payloads and unknown events are acked {ok:false}; the fifth strike disconnects the socket (audited)',
  };
}

export function buildOpenApiDocument(config: Config): OpenApiDocument {
  const routes = routesFor(config);
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    const item = (paths[path] ??= {});
    if (item[route.method] !== undefined) throw new Error(`the route registry lists ${route.method.toUpperCase()} ${route.path} twice`);
    item[route.method] = operation(route);
  }
  const tags = [...new Set(routes.map((route) => route.tag))].map((name) => ({ name }));
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: JSON_SCHEMA_DIALECT,
    info: {
      title: 'botserver',
      version: packageVersion(),
      description: 'Security-first bot server. Errors are always `{error, message, requestId}` (plus `field` for validation errors), never a stack trace.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
    tags,
    paths,
    components: {
      schemas: { Error: jsonSchemaOf(errorSchema, 'output') },
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'An access JWT from /auth/login or /auth/refresh; on the conversation routes also a guest JWT from /api/bots/{id}/guest-token.',
        },
        cookieAuth: {
          type: 'apiKey',
          in: 'cookie',
          name: SESSION_COOKIE,
          description: `The HttpOnly browser session from /auth/login?cookie=1 or the OIDC login. State-changing requests must also send the ${CSRF_HEADER} header with the login's csrfToken.`,
        },
      },
    },
    'x-socketio': socketEvents(),
  };
}
