/**
 * A local stand-in for an OpenAI-compatible embeddings endpoint (`POST /v1/embeddings`), following the documented
 * shapes: the body `{input, model, encoding_format?, dimensions?, user?}` where input is a string or an array of
 * strings (token arrays are refused here), the answer `{object: 'list', data: [{object: 'embedding', index,
 * embedding}], model, usage: {prompt_tokens, total_tokens}}`, and errors `{error: {message, type, param, code}}`:
 * 400 for a malformed body (not JSON, missing model, empty or non-string input, over 2048 inputs, unknown
 * parameters), 401 for a wrong or missing key when one is required, 404 for an unknown model or path.
 *
 * Vectors come from the HashingEmbedder (384 dimensions, or the `dimensions` asked for, cut and re-normalised as
 * OpenAI's text-embedding-3 models do). It can answer in reverse order, and follow a script of failures, one step
 * per request. `embeddingsEndpoint()` gives the real endpoint instead when EMBEDDINGS_BASE_URL is set.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HASHING_DIMENSION, hashingVector } from '../../adapters/embeddings/hashing.js';

export interface OpenAiErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

export type EmbeddingsStep =
  | { kind: 'ok' }
  | { kind: 'status'; status: number; error?: OpenAiErrorBody }
  /** Accept the request and never answer. */
  | { kind: 'hang' }
  /** Destroy the connection without an answer. */
  | { kind: 'drop' }
  /** Answer 200 with a body that is not JSON. */
  | { kind: 'garbage' }
  /** Answer 200 with this JSON body as it is. */
  | { kind: 'json'; body: unknown };

export interface RecordedEmbeddingsRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface EmbeddingsServerOptions {
  /** When set, requests need `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Models served; any other is 404 `model_not_found` (default: any model). */
  models?: readonly string[];
  /** Answer `data` in reverse order (clients must sort by `index`). */
  reverse?: boolean;
  /** Scale vectors by this factor (unnormalised answers, as some servers give). */
  scale?: number;
}

export interface EmbeddingsServer {
  /** Base URL to configure, ending in `/v1`. */
  url: string;
  requests: RecordedEmbeddingsRequest[];
  /** Steps used in order, one per request, then `ok` for good; also forgets recorded requests. */
  setScript(steps: EmbeddingsStep[]): void;
  stop(): Promise<void>;
}

export const STAND_IN_DIMENSION = HASHING_DIMENSION;
const MAX_INPUTS = 2048;
const MAX_BODY_BYTES = 16 * 1024 * 1024;
const KNOWN_PARAMETERS = new Set(['input', 'model', 'encoding_format', 'dimensions', 'user']);

class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly body: OpenAiErrorBody,
  ) {
    super(body.message);
  }
}

const invalid = (message: string, param: string | null, code: string | null = null): RequestError =>
  new RequestError(400, { message, type: 'invalid_request_error', param, code });

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw invalid('Request body too large.', null);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Validates a request body the way OpenAI documents it; returns the inputs, model and options. */
function parseRequest(text: string, models: readonly string[] | undefined): { inputs: string[]; model: string; dimensions: number | undefined; base64: boolean } {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw invalid('We could not parse the JSON body of your request. (HINT: This likely means you aren\'t using your HTTP library correctly.)', null);
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('The request body must be a JSON object.', null);
  const fields = body as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!KNOWN_PARAMETERS.has(key)) throw invalid(`Unrecognized request argument supplied: ${key}`, key);
  }
  const { model, input, encoding_format: encoding, dimensions, user } = fields;
  if (model === undefined) throw invalid('you must provide a model parameter', 'model');
  if (typeof model !== 'string' || model === '') throw invalid(`Invalid type for 'model': expected a non-empty string.`, 'model');
  if (models !== undefined && !models.includes(model)) {
    throw new RequestError(404, { message: `The model \`${model}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', param: null, code: 'model_not_found' });
  }
  if (input === undefined) throw invalid("Missing required parameter: 'input'.", 'input');
  let inputs: string[];
  if (typeof input === 'string') inputs = [input];
  else if (Array.isArray(input)) {
    if (input.length === 0) throw invalid("'$.input' is invalid: an empty array.", 'input');
    if (input.length > MAX_INPUTS) throw invalid(`'$.input' is too long: at most ${MAX_INPUTS} inputs.`, 'input');
    if (!input.every((item): item is string => typeof item === 'string')) {
      throw invalid("'$.input' is invalid: this stand-in accepts a string or an array of strings (no token arrays).", 'input');
    }
    inputs = input;
  } else throw invalid("'$.input' is invalid: expected a string or an array of strings.", 'input');
  if (inputs.some((item) => item === '')) throw invalid("'$.input' is invalid: input cannot be an empty string.", 'input');
  if (encoding !== undefined && encoding !== 'float' && encoding !== 'base64') {
    throw invalid(`Invalid value for 'encoding_format': expected 'float' or 'base64'.`, 'encoding_format');
  }
  if (dimensions !== undefined && (typeof dimensions !== 'number' || !Number.isInteger(dimensions) || dimensions < 1 || dimensions > STAND_IN_DIMENSION)) {
    throw invalid(`Invalid value for 'dimensions': expected an integer from 1 to ${STAND_IN_DIMENSION}.`, 'dimensions');
  }
  if (user !== undefined && typeof user !== 'string') throw invalid("Invalid type for 'user': expected a string.", 'user');
  return { inputs, model, dimensions, base64: encoding === 'base64' };
}

function embedding(text: string, dimensions: number | undefined, scale: number, base64: boolean): number[] | string {
  let vector = hashingVector(text);
  if (dimensions !== undefined && dimensions < vector.length) {
    const cut = vector.slice(0, dimensions);
    const norm = Math.sqrt(cut.reduce((sum, value) => sum + value * value, 0)) || 1;
    vector = cut.map((value) => value / norm);
  }
  vector = vector.map((value) => value * scale);
  return base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector;
}

export async function startEmbeddingsServer(options: EmbeddingsServerOptions = {}): Promise<EmbeddingsServer> {
  const requests: RecordedEmbeddingsRequest[] = [];
  let steps: EmbeddingsStep[] = [];

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const text = await readBody(request);
    let recorded: unknown = text;
    try {
      recorded = JSON.parse(text);
    } catch {
      // keep the raw text
    }
    const path = (request.url ?? '').split('?')[0] ?? '';
    requests.push({ method: request.method ?? '', path, headers: request.headers, body: recorded });
    if (request.method !== 'POST' || path !== '/v1/embeddings') {
      throw new RequestError(404, { message: `Invalid URL (${request.method ?? ''} ${path})`, type: 'invalid_request_error', param: null, code: null });
    }
    if (options.apiKey !== undefined && request.headers.authorization !== `Bearer ${options.apiKey}`) {
      throw new RequestError(401, { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' });
    }
    const step = steps.shift() ?? { kind: 'ok' };
    switch (step.kind) {
      case 'hang':
        return;
      case 'drop':
        response.destroy();
        return;
      case 'garbage':
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('<html>upstream proxy error</html>');
        return;
      case 'json':
        send(response, 200, step.body);
        return;
      case 'status':
        send(response, step.status, { error: step.error ?? { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } });
        return;
      case 'ok':
        break;
    }
    const parsed = parseRequest(text, options.models);
    const data = parsed.inputs.map((input, index) => ({ object: 'embedding', index, embedding: embedding(input, parsed.dimensions, options.scale ?? 1, parsed.base64) }));
    if (options.reverse === true) data.reverse();
    const tokens = parsed.inputs.reduce((sum, input) => sum + Math.max(1, Math.ceil(input.length / 4)), 0);
    send(response, 200, { object: 'list', data, model: parsed.model, usage: { prompt_tokens: tokens, total_tokens: tokens } });
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (error instanceof RequestError) send(response, error.status, { error: error.body });
      else response.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    setScript(next: EmbeddingsStep[]): void {
      steps = [...next];
      requests.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}

export interface EmbeddingsEndpoint {
  url: string;
  apiKey: string | undefined;
  model: string | undefined;
  /** True for the endpoint named by EMBEDDINGS_BASE_URL (its requests cannot be inspected or scripted). */
  real: boolean;
  /** The stand-in, when `real` is false. */
  server: EmbeddingsServer | undefined;
  stop(): Promise<void>;
}

/** The endpoint named by EMBEDDINGS_BASE_URL (with EMBEDDINGS_API_KEY and EMBEDDINGS_MODEL) or a fresh stand-in. */
export async function embeddingsEndpoint(options: EmbeddingsServerOptions = {}): Promise<EmbeddingsEndpoint> {
  const url = process.env.EMBEDDINGS_BASE_URL;
  if (url !== undefined && url !== '') {
    return { url, apiKey: process.env.EMBEDDINGS_API_KEY, model: process.env.EMBEDDINGS_MODEL, real: true, server: undefined, stop: () => Promise.resolve() };
  }
  const server = await startEmbeddingsServer(options);
  return { url: server.url, apiKey: options.apiKey, model: undefined, real: false, server, stop: () => server.stop() };
}
