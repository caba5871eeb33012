/**
 * Qdrant 1.19's own OpenAPI document (test/fixtures/qdrant-openapi.json, a copy of the Apache-2.0 file of the qdrant
 * repository) turned into ajv validators: request bodies, query parameters and (for the stand-in's own answers)
 * 200 response bodies of the routes the Qdrant stand-in serves.
 *
 * OpenAPI 3.0 is not JSON Schema: `nullable: true` is rewritten as `anyOf: [schema, {type: 'null'}]` (and a schema
 * that is nothing but `nullable: true`, the `anyOf: [{$ref}, {nullable: true}]` idiom of Qdrant's generator, as
 * `{type: 'null'}`; rewritten naively it would become `{}` and accept anything), and the document's
 * `#/components/…` references resolve against the whole document added to ajv under an `$id`.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

export const QDRANT_SPEC_FILE = new URL('../fixtures/qdrant-openapi.json', import.meta.url);
const SPEC_ID = 'qdrant-openapi.json';

/** Keywords that only annotate: a schema made of these and `nullable` says "null" and nothing else. */
const ANNOTATIONS = new Set(['nullable', 'description', 'default', 'example', 'examples', 'title', 'deprecated', 'readOnly', 'writeOnly']);
/** Values that are data, not schemas: never rewritten. */
const DATA_KEYWORDS = new Set(['default', 'example', 'examples', 'enum', 'const']);

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** OpenAPI 3.0 schema → JSON Schema (draft-07 as ajv runs it), references pointed at the document's `$id`. */
export function toJsonSchema(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!isObject(node)) return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === '$ref' && typeof value === 'string' && value.startsWith('#/')) out[key] = `${SPEC_ID}${value}`;
    else if (DATA_KEYWORDS.has(key)) out[key] = value;
    else if (key === 'properties' && isObject(value)) out[key] = Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, toJsonSchema(schema)]));
    else out[key] = toJsonSchema(value);
  }
  if (out.nullable !== true) {
    delete out.nullable;
    return out;
  }
  delete out.nullable;
  if (Object.keys(out).every((key) => ANNOTATIONS.has(key))) return { ...out, type: 'null' };
  const annotations: JsonObject = {};
  for (const key of ['description', 'default', 'deprecated']) {
    if (key in out) {
      annotations[key] = out[key];
      delete out[key];
    }
  }
  return { ...annotations, anyOf: [out, { type: 'null' }] };
}

interface OpenApiParameter {
  name: string;
  in: string;
  required?: boolean;
  schema?: unknown;
}

interface OpenApiOperation {
  operationId?: string;
  parameters?: OpenApiParameter[];
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
}

interface OpenApiDocument {
  info: { version: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: JsonObject;
}

/** What one operation of the document accepts and answers. */
export interface OperationValidator {
  readonly operationId: string;
  readonly method: string;
  readonly path: string;
  readonly hasBody: boolean;
  /** undefined when the body is one the document accepts, else the reasons. */
  body(value: unknown): string | undefined;
  /** Checks the declared query parameters (strings coerced as a server would); unknown parameters are ignored. */
  query(params: URLSearchParams): string | undefined;
  /** Checks a 200 answer against the document (the stand-in checks its own answers with it). */
  response(value: unknown): string | undefined;
}

function describe(errors: ErrorObject[] | null | undefined): string {
  if (!errors || errors.length === 0) return 'invalid';
  // anyOf failures list every branch; the deepest paths say the most.
  const sorted = [...errors].sort((a, b) => b.instancePath.length - a.instancePath.length);
  const parts = sorted.slice(0, 4).map((error) => `${error.instancePath === '' ? '(body)' : error.instancePath} ${error.message ?? 'is invalid'}${error.params && 'allowedValues' in error.params ? ` ${JSON.stringify(error.params.allowedValues)}` : ''}${error.params && 'additionalProperty' in error.params ? ` (${String(error.params.additionalProperty)})` : ''}`);
  return parts.join('; ');
}

export class QdrantSpec {
  readonly version: string;
  readonly document: OpenApiDocument;
  private readonly strictAjv: Ajv;
  private readonly coercingAjv: Ajv;
  private readonly cache = new Map<string, OperationValidator>();

  constructor(document: OpenApiDocument) {
    this.document = document;
    this.version = document.info.version;
    const schemas = isObject(document.components.schemas) ? document.components.schemas : {};
    const root = { $id: SPEC_ID, components: { schemas: Object.fromEntries(Object.entries(schemas).map(([name, schema]) => [name, toJsonSchema(schema)])) } };
    this.strictAjv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
    this.strictAjv.addSchema(root);
    this.coercingAjv = new Ajv({ strict: false, validateFormats: false, allErrors: true, coerceTypes: true });
    this.coercingAjv.addSchema(root);
  }

  /** Every operation of the document, as `METHOD /path/{template}`. */
  operations(): string[] {
    return Object.entries(this.document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
  }

  /** Compiles every request-body schema of the document (a check that the whole document is usable). */
  compileAllRequestBodies(): number {
    let count = 0;
    for (const entry of this.operations()) {
      const [method = '', path = ''] = entry.split(' ');
      if (this.operation(method, path).hasBody) count += 1;
    }
    return count;
  }

  /** The validator of `method path` (the path as the document writes it, `{collection_name}` and all). */
  operation(method: string, path: string): OperationValidator {
    const key = `${method.toUpperCase()} ${path}`;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const operation = this.document.paths[path]?.[method.toLowerCase()];
    if (operation === undefined) throw new Error(`The Qdrant document has no operation ${key}`);
    const bodySchema = operation.requestBody?.content?.['application/json']?.schema;
    const bodyValidator = bodySchema === undefined ? undefined : this.strictAjv.compile(toJsonSchema(bodySchema) as JsonObject);
    const queryParameters = (operation.parameters ?? []).filter((parameter) => parameter.in === 'query');
    const queryValidator = this.coercingAjv.compile({
      type: 'object',
      properties: Object.fromEntries(queryParameters.map((parameter) => [parameter.name, toJsonSchema(parameter.schema ?? {})])),
      required: queryParameters.filter((parameter) => parameter.required === true).map((parameter) => parameter.name),
    });
    const responseSchema = operation.responses?.['200']?.content?.['application/json']?.schema;
    const responseValidator: ValidateFunction | undefined = responseSchema === undefined ? undefined : this.strictAjv.compile(toJsonSchema(responseSchema) as JsonObject);
    const validator: OperationValidator = {
      operationId: operation.operationId ?? key,
      method: method.toUpperCase(),
      path,
      hasBody: bodyValidator !== undefined,
      body(value: unknown): string | undefined {
        if (bodyValidator === undefined) return undefined;
        return bodyValidator(value) ? undefined : describe(bodyValidator.errors);
      },
      query(params: URLSearchParams): string | undefined {
        const values: JsonObject = {};
        for (const parameter of queryParameters) {
          const value = params.get(parameter.name);
          if (value !== null) values[parameter.name] = value;
        }
        return queryValidator(values) ? undefined : describe(queryValidator.errors);
      },
      response(value: unknown): string | undefined {
        if (responseValidator === undefined) return undefined;
        return responseValidator(value) ? undefined : describe(responseValidator.errors);
      },
    };
    this.cache.set(key, validator);
    return validator;
  }
}

let loaded: QdrantSpec | undefined;

/** The document of the repository's fixture, parsed and compiled once per process. */
export function qdrantSpec(): QdrantSpec {
  loaded ??= new QdrantSpec(JSON.parse(readFileSync(QDRANT_SPEC_FILE, 'utf8')) as OpenApiDocument);
  return loaded;
}
