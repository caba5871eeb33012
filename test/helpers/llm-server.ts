/**
 * A local stand-in for an OpenAI-compatible chat completions endpoint (no hosted LLM can run here). It speaks the
 * documented shapes: `POST …/chat/completions`, SSE `data: {chat.completion.chunk}` lines ending with
 * `data: [DONE]`, a `chat.completion` JSON object, and `{error:{message,type,code}}` error bodies. It follows a
 * script, one step per request, and records every request.
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProviderErrorBody {
  message: string;
  type: string;
  code: string | null;
}

export interface StreamStep {
  kind: 'stream';
  /** The content pieces, each sent as one `chat.completion.chunk`. */
  deltas: string[];
  /** Pause before each content chunk. */
  delayMs?: number;
  /** After this many deltas, send `data: {"error":…}` and end the response. */
  errorAfter?: number;
  error?: ProviderErrorBody;
  /** After this many deltas, destroy the connection (no `[DONE]`, no clean end). */
  dropAfter?: number;
  /** End the response cleanly after the last delta without sending `data: [DONE]`. */
  omitDone?: boolean;
  /** Write the bytes in pieces of this many bytes (splitting lines, JSON and UTF-8 sequences), a little apart. */
  splitBytes?: number;
  /** Lines end in CRLF instead of LF. */
  crlf?: boolean;
  /** Add `: keep-alive` comment lines and an unknown field. */
  comments?: boolean;
  /** Spread each chunk's JSON over two `data:` lines of the same event. */
  multiLineData?: boolean;
}

export type LlmStep =
  | StreamStep
  | { kind: 'json'; content: string }
  | { kind: 'status'; status: number; retryAfter?: string; retryAfterMs?: string; error?: ProviderErrorBody }
  /** Accept the request and never answer. */
  | { kind: 'hang' };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (or the raw text when it was not JSON). */
  body: unknown;
  receivedAt: number;
}

export interface LlmServer {
  /** Base URL to configure, ending in `/v1`. */
  url: string;
  requests: RecordedRequest[];
  /** Replaces the script (steps are used in order, the last one repeats) and forgets recorded requests. */
  setScript(script: LlmStep[]): void;
  stop(): Promise<void>;
}

export const DEFAULT_STEP: LlmStep = { kind: 'stream', deltas: ['Hello', ' from', ' the', ' test', ' server.'] };

const sleep = (milliseconds: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, milliseconds));

function chunkJson(model: string, delta: Record<string, string>, finishReason: string | null): string {
  return JSON.stringify({
    id: 'chatcmpl-test',
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  });
}

function event(json: string, step: StreamStep): string {
  const eol = step.crlf === true ? '\r\n' : '\n';
  let lines: string[];
  // Split after the first `,"` (between two members, outside any string): the lines are joined with "\n".
  const cut = json.indexOf(',"') + 1;
  if (step.multiLineData === true && cut > 0) {
    lines = [`data: ${json.slice(0, cut)}`, `data:${json.slice(cut)}`];
  } else {
    lines = [`data: ${json}`];
  }
  if (step.comments === true) lines = [': keep-alive', 'id: 7', ...lines];
  return lines.join(eol) + eol + eol;
}

async function write(response: ServerResponse, text: string, step: StreamStep): Promise<void> {
  if (step.splitBytes === undefined) {
    response.write(text);
    return;
  }
  const bytes = Buffer.from(text, 'utf8');
  for (let offset = 0; offset < bytes.length; offset += step.splitBytes) {
    response.write(bytes.subarray(offset, offset + step.splitBytes));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Cuts the connection once what was written so far has reached the client. */
async function drop(response: ServerResponse): Promise<void> {
  await new Promise<void>((resolve) => response.write('', () => resolve()));
  await sleep(20);
  response.socket?.destroy();
}

async function stream(response: ServerResponse, step: StreamStep, model: string): Promise<void> {
  response.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  if (step.comments === true) await write(response, step.crlf === true ? ': ping\r\n\r\n' : ': ping\n\n', step);
  await write(response, event(chunkJson(model, { role: 'assistant', content: '' }, null), step), step);
  for (const [index, delta] of step.deltas.entries()) {
    if (step.dropAfter === index) return drop(response);
    if (step.errorAfter === index) {
      const error = step.error ?? { message: 'The server had an error while processing your request.', type: 'server_error', code: null };
      await write(response, event(JSON.stringify({ error }), step), step);
      response.end();
      return;
    }
    if (step.delayMs !== undefined) await sleep(step.delayMs);
    if (response.destroyed) return;
    await write(response, event(chunkJson(model, { content: delta }, null), step), step);
  }
  if (step.dropAfter === step.deltas.length) return drop(response);
  await write(response, event(chunkJson(model, {}, 'stop'), step), step);
  if (step.omitDone !== true) await write(response, event('[DONE]', step), step);
  response.end();
}

function json(response: ServerResponse, content: string, model: string): void {
  response.writeHead(200, { 'content-type': 'application/json' });
  response.end(
    JSON.stringify({
      id: 'chatcmpl-test',
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    }),
  );
}

function status(response: ServerResponse, step: Extract<LlmStep, { kind: 'status' }>): void {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (step.retryAfter !== undefined) headers['retry-after'] = step.retryAfter;
  if (step.retryAfterMs !== undefined) headers['retry-after-ms'] = step.retryAfterMs;
  response.writeHead(step.status, headers);
  const error = step.error ?? { message: `Scripted failure ${step.status}`, type: step.status === 429 ? 'rate_limit_error' : 'server_error', code: null };
  response.end(JSON.stringify({ error }));
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function modelOf(body: unknown): string {
  return typeof body === 'object' && body !== null && 'model' in body && typeof body.model === 'string' ? body.model : 'unknown';
}

export async function startLlmServer(script: LlmStep[] = [DEFAULT_STEP]): Promise<LlmServer> {
  let steps = script;
  let cursor = 0;
  const requests: RecordedRequest[] = [];

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const body = await readBody(request);
    const receivedAt = Date.now();
    requests.push({ method: request.method ?? '', path: request.url ?? '', headers: request.headers, body, receivedAt });
    if (request.method !== 'POST' || !(request.url ?? '').endsWith('/chat/completions')) {
      status(response, { kind: 'status', status: 404, error: { message: 'Unknown route', type: 'invalid_request_error', code: 'unknown_url' } });
      return;
    }
    const step = steps[Math.min(cursor, steps.length - 1)] ?? DEFAULT_STEP;
    cursor += 1;
    const model = modelOf(body);
    switch (step.kind) {
      case 'stream':
        return stream(response, step, model);
      case 'json':
        return json(response, step.content, model);
      case 'status':
        return status(response, step);
      case 'hang':
        return;
    }
  };

  const server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    setScript(next: LlmStep[]): void {
      steps = next;
      cursor = 0;
      requests.length = 0;
    },
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      }),
  };
}
