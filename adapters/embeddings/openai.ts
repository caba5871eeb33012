/**
 * An OpenAI-compatible embeddings client (`POST <EMBEDDINGS_BASE_URL>/embeddings`, body `{model, input: [...]}`,
 * answer `{data: [{index, embedding}]}`): OpenAI itself, Azure-style gateways, Ollama, vLLM, LiteLLM, text-embeddings-
 * inference and the like.
 *
 * - Texts go in batches of 64 (one request at a time); vectors come back in input order (sorted by `index`) and are
 *   re-normalised to unit length (not every server normalises).
 * - The dimension is learned from the first answer: call `init()` (one probe request) before reading `dimension`,
 *   or pass `dimension` when it is known. `createEmbedder` does the probe.
 * - Each request has a timeout (30 s, connecting to the last byte of the answer). Connection failures, timeouts,
 *   429 and 5xx are UnavailableError (503: try again later); any other refusal (4xx, a redirect) or an answer that
 *   does not fit the documented shape is AppError `embeddings_error` (502). Messages name the status and the
 *   provider's error type/code, never its message or the texts.
 * - The endpoint refuses empty strings, so a blank text is sent as a single space.
 */
import { AppError, UnavailableError } from '../../shared/errors.js';
import { z } from 'zod';
import { TooLargeError } from '../llm/sse.js';
import { describeProviderError, readBounded } from '../llm/wire.js';
import type { Embedder } from './types.js';

export const DEFAULT_EMBEDDINGS_MODEL = 'text-embedding-3-small';
export const EMBEDDINGS_BATCH_SIZE = 64;

export interface OpenAiEmbedderOptions {
  /** The endpoint's base, with or without `/v1`; `/embeddings` is appended. */
  baseUrl: string;
  /** Default DEFAULT_EMBEDDINGS_MODEL. */
  model?: string | undefined;
  /** Sent as `Authorization: Bearer <key>` when set. */
  apiKey?: string | undefined;
  /** Per request, connecting to the last byte of the answer (default 30 s). */
  timeoutMs?: number;
  /** Texts per request (default 64). */
  batchSize?: number;
  /** The vector size when known in advance (no probe needed); answers of another size are refused. */
  dimension?: number;
  /** Largest answer accepted (default 64 MiB). */
  maxResponseBytes?: number;
  fetch?: typeof fetch;
}

const answer = z
  .object({
    data: z.array(z.object({ index: z.number().int().nonnegative(), embedding: z.array(z.number()).min(1) }).loose()),
  })
  .loose();

/** A refusal or a malformed answer: the request will not succeed by trying again. */
export function embeddingsError(message: string, cause?: unknown): AppError {
  return new AppError('embeddings_error', message, { status: 502, ...(cause === undefined ? {} : { cause }) });
}

function normalise(vector: number[]): number[] {
  let squares = 0;
  for (const value of vector) squares += value * value;
  const norm = Math.sqrt(squares);
  if (!Number.isFinite(norm) || norm === 0) throw embeddingsError('the embeddings endpoint returned a zero or invalid vector');
  return vector.map((value) => value / norm);
}

export class OpenAiEmbedder implements Embedder {
  readonly model: string;
  private readonly url: URL;
  private readonly apiKey: string | undefined;
  private readonly timeoutMs: number;
  private readonly batchSize: number;
  private readonly maxResponseBytes: number;
  private readonly fetch: typeof fetch;
  private learned: number | undefined;
  private probe: Promise<void> | undefined;

  constructor(options: OpenAiEmbedderOptions) {
    this.url = new URL('embeddings', options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    this.model = options.model === undefined || options.model === '' ? DEFAULT_EMBEDDINGS_MODEL : options.model;
    this.apiKey = options.apiKey === '' ? undefined : options.apiKey;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.batchSize = options.batchSize ?? EMBEDDINGS_BATCH_SIZE;
    this.maxResponseBytes = options.maxResponseBytes ?? 64 * 1024 * 1024;
    this.learned = options.dimension;
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    if (!Number.isInteger(this.batchSize) || this.batchSize < 1) throw new RangeError('batchSize must be a positive integer');
  }

  /** The endpoint requests are sent to. */
  get endpoint(): string {
    return this.url.href;
  }

  /** The vector size; known after `init()` or the first `embed`, or when given to the constructor. */
  get dimension(): number {
    if (this.learned === undefined) throw new Error('OpenAiEmbedder: the dimension is not known yet; await init() first');
    return this.learned;
  }

  /** Learns the dimension with one probe request unless it is already known. Idempotent; a failed probe may be retried. */
  async init(): Promise<void> {
    if (this.learned !== undefined) return;
    this.probe ??= this.embed(['dimension probe']).then(
      () => undefined,
      (error: unknown) => {
        this.probe = undefined;
        throw error;
      },
    );
    await this.probe;
  }

  async embed(texts: readonly string[]): Promise<number[][]> {
    const vectors: number[][] = [];
    for (let start = 0; start < texts.length; start += this.batchSize) {
      vectors.push(...(await this.request(texts.slice(start, start + this.batchSize))));
    }
    return vectors;
  }

  private async request(batch: readonly string[]): Promise<number[][]> {
    const body = JSON.stringify({ model: this.model, input: batch.map((text) => (text.trim() === '' ? ' ' : text)) });
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    const unreachable = (error: unknown): UnavailableError =>
      timedOut
        ? new UnavailableError(`the embeddings endpoint did not answer within ${this.timeoutMs} ms`)
        : new UnavailableError('could not reach the embeddings endpoint', error);
    try {
      let response: Response;
      try {
        response = await this.fetch(this.url, { method: 'POST', headers, body, signal: controller.signal, redirect: 'manual' });
      } catch (error) {
        throw unreachable(error);
      }
      if (response.status < 200 || response.status >= 300) throw await this.statusError(response);
      let text: string;
      try {
        text = await readBounded(response, this.maxResponseBytes, () => undefined);
      } catch (error) {
        if (error instanceof TooLargeError) throw embeddingsError('the embeddings endpoint answer is larger than allowed');
        throw unreachable(error);
      }
      let payload: unknown;
      try {
        payload = JSON.parse(text);
      } catch {
        throw embeddingsError(`the embeddings endpoint sent malformed JSON (${response.status})`);
      }
      return this.vectors(payload, batch.length);
    } finally {
      clearTimeout(timer);
    }
  }

  private vectors(payload: unknown, expected: number): number[][] {
    const parsed = answer.safeParse(payload);
    if (!parsed.success) throw embeddingsError(`the embeddings endpoint sent no embeddings${describeProviderError(payload).label}`);
    const data = parsed.data.data;
    if (data.length !== expected) throw embeddingsError(`the embeddings endpoint sent ${data.length} embeddings for ${expected} inputs`);
    const ordered = new Array<number[] | undefined>(expected).fill(undefined);
    for (const item of data) {
      if (item.index >= expected || ordered[item.index] !== undefined) throw embeddingsError('the embeddings endpoint sent embeddings with wrong indexes');
      ordered[item.index] = item.embedding;
    }
    return ordered.map((vector) => {
      if (vector === undefined) throw embeddingsError('the embeddings endpoint sent embeddings with wrong indexes');
      if (this.learned === undefined) this.learned = vector.length;
      if (vector.length !== this.learned) {
        throw embeddingsError(`the embeddings endpoint sent vectors of ${vector.length} dimensions, expected ${this.learned}`);
      }
      return normalise(vector);
    });
  }

  private async statusError(response: Response): Promise<AppError> {
    const status = response.status;
    let details: unknown;
    try {
      details = JSON.parse(await readBounded(response, 64 * 1024, () => undefined));
    } catch {
      details = undefined;
    }
    const { label } = describeProviderError(details);
    if (status === 429) return new UnavailableError(`the embeddings endpoint is rate limiting (429${label})`);
    if (status === 408 || status >= 500) return new UnavailableError(`the embeddings endpoint failed (${status}${label})`);
    if (status >= 300 && status < 400) return embeddingsError(`the embeddings endpoint redirected (${status}); set EMBEDDINGS_BASE_URL to the final URL`);
    return embeddingsError(`the embeddings endpoint refused the request (${status}${label})`);
  }
}
