/** The wire shapes of OpenAI-compatible chat completions, and small HTTP helpers for reading them safely. */
import { z } from 'zod';
import { TooLargeError } from './sse.js';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface ChatCompletionRequestBody {
  model: string;
  messages: ChatMessage[];
  temperature?: number;
  stream: true;
}

const providerError = z.object({ type: z.unknown().optional(), code: z.unknown().optional() }).loose();
export const streamChunk = z.object({
  error: z.unknown().optional(),
  choices: z
    .array(z.object({ index: z.number().optional(), delta: z.object({ content: z.string().nullish() }).loose().nullish() }).loose())
    .nullish(),
});
export const completion = z.object({
  error: z.unknown().optional(),
  choices: z.array(z.object({ index: z.number().optional(), message: z.object({ content: z.string().nullish() }).loose() }).loose()),
});

const SAFE_IDENTIFIER = /^[A-Za-z0-9_.:-]{1,64}$/;
export const BAD_REQUEST_TYPES = new Set(['invalid_request_error', 'authentication_error', 'permission_error', 'not_found_error']);

/** The provider's error type and code, kept only when they are plain identifiers (its message is never kept). */
export function describeProviderError(value: unknown): { type?: string; code?: string; label: string } {
  const inner = typeof value === 'object' && value !== null && 'error' in value ? value.error : value;
  const parsed = providerError.safeParse(inner);
  const pick = (field: unknown): string | undefined =>
    (typeof field === 'string' || typeof field === 'number') && SAFE_IDENTIFIER.test(String(field)) ? String(field) : undefined;
  const type = parsed.success ? pick(parsed.data.type) : undefined;
  const code = parsed.success ? pick(parsed.data.code) : undefined;
  const label = [type, code].filter((part) => part !== undefined).join('/');
  return { ...(type === undefined ? {} : { type }), ...(code === undefined ? {} : { code }), label: label === '' ? '' : ` (${label})` };
}

/** `retry-after-ms` (OpenAI) or `Retry-After` in seconds or as an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(headers: Headers, now = Date.now()): number | undefined {
  const milliseconds = Number(headers.get('retry-after-ms') ?? Number.NaN);
  if (Number.isFinite(milliseconds) && milliseconds >= 0) return milliseconds;
  const value = headers.get('retry-after')?.trim();
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds >= 0 ? seconds * 1000 : undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Resolves after `milliseconds`; rejects at once when `signal` aborts. */
export function sleep(milliseconds: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Error('aborted'));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, milliseconds);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The body's reader (undici types the body's chunks loosely; they are bytes). */
export function bodyReader(response: Response): ReadableStreamDefaultReader<Uint8Array> | undefined {
  return (response.body as ReadableStream<Uint8Array> | null)?.getReader();
}

/** Reads a response body as UTF-8, refusing more than `maxBytes`. */
export async function readBounded(response: Response, maxBytes: number, firstByte: () => void): Promise<string> {
  const reader = bodyReader(response);
  if (reader === undefined) return '';
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text + decoder.decode();
      firstByte();
      bytes += value.byteLength;
      if (bytes > maxBytes) throw new TooLargeError();
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    void reader.cancel().catch(() => undefined);
  }
}

