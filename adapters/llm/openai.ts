import { log } from '../../shared/log/index.js';
import { SseParser, TooLargeError, type SseEvent } from './sse.js';
import {
  BAD_REQUEST_TYPES,
  bodyReader,
  completion,
  describeProviderError,
  parseRetryAfter,
  readBounded,
  sleep,
  streamChunk,
  type ChatCompletionRequestBody,
  type ChatMessage,
} from './wire.js';
import { LlmError, type DeltaHandler, type LlmErrorCode, type ReplyEngine, type ReplyRequest } from './types.js';

export const DEFAULT_LLM_MODEL = 'gpt-4o-mini';

export interface OpenAiChatClientOptions {
  /** The endpoint's base, with or without `/v1`; `/chat/completions` is appended. */
  baseUrl: string;
  apiKey?: string | undefined;
  /** Used when the bot names no model; DEFAULT_LLM_MODEL when neither does. */
  model?: string | undefined;
  /** Connecting, sending and receiving the first byte of the answer, per attempt (default 30 s). */
  firstByteTimeoutMs?: number;
  /** The whole reply, retries included (default 120 s). */
  totalTimeoutMs?: number;
  /** Further attempts after a 429, a 5xx, a network failure or a broken stream, only while no delta was handed to onDelta (default 3). */
  maxRetries?: number;
  /** First backoff; doubled each retry, with jitter (default 500 ms). */
  retryBaseDelayMs?: number;
  /** Longest wait between attempts, backoff or `Retry-After` alike (default 20 s). */
  maxRetryDelayMs?: number;
  /** Most recent turns of history sent (default 50). */
  maxHistoryTurns?: number;
  /** Longest reply accepted, in characters (default 100,000); longer is an error, never a silent cut. */
  maxReplyChars?: number;
  fetch?: typeof fetch;
}

/** Thrown around an error of the caller's delta handler, so it is passed back untouched and never retried. */
class HandlerFailure extends Error {
  constructor(readonly error: unknown) {
    super('the delta handler failed');
  }
}

/** One call of `reply`: the overall deadline, the caller's signal, and what was delivered so far. */
class ReplyRun {
  readonly controller = new AbortController();
  readonly deadline: number;
  timedOut = false;
  /** Whether a delta was handed to the caller's onDelta (from then on nothing is retried). */
  delivered = false;
  /** The reply received in the current attempt. */
  text = '';
  private readonly timer: NodeJS.Timeout;
  private readonly onCallerAbort = (): void => this.controller.abort();

  constructor(
    readonly callerSignal: AbortSignal | undefined,
    totalTimeoutMs: number,
  ) {
    this.deadline = Date.now() + totalTimeoutMs;
    this.timer = setTimeout(() => {
      this.timedOut = true;
      this.controller.abort();
    }, totalTimeoutMs);
    callerSignal?.addEventListener('abort', this.onCallerAbort, { once: true });
  }

  dispose(): void {
    clearTimeout(this.timer);
    this.callerSignal?.removeEventListener('abort', this.onCallerAbort);
  }

  fail(code: LlmErrorCode, summary: string, retryable: boolean, extra: { upstreamStatus?: number; retryAfterMs?: number; cause?: unknown } = {}): LlmError {
    return new LlmError(code, summary, { retryable, partial: this.delivered, ...extra });
  }
}

/** Whether an abort-driven failure is the caller's, the overall deadline's or this attempt's first-byte timer's. */
interface Attempt {
  firstByteTimedOut: boolean;
  headersReceived: boolean;
}

/** An OpenAI-compatible chat completions client: streams, retries what may be retried, never truncates silently. */
export class OpenAiChatClient implements ReplyEngine {
  private readonly url: URL;
  private readonly apiKey: string | undefined;
  private readonly model: string;
  private readonly firstByteTimeoutMs: number;
  private readonly totalTimeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly maxHistoryTurns: number;
  private readonly maxReplyChars: number;
  private readonly fetch: typeof fetch;

  constructor(options: OpenAiChatClientOptions) {
    this.url = new URL('chat/completions', options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    this.apiKey = options.apiKey === '' ? undefined : options.apiKey;
    this.model = options.model ?? DEFAULT_LLM_MODEL;
    this.firstByteTimeoutMs = options.firstByteTimeoutMs ?? 30_000;
    this.totalTimeoutMs = options.totalTimeoutMs ?? 120_000;
    this.maxRetries = options.maxRetries ?? 3;
    this.retryBaseDelayMs = options.retryBaseDelayMs ?? 500;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 20_000;
    this.maxHistoryTurns = options.maxHistoryTurns ?? 50;
    this.maxReplyChars = options.maxReplyChars ?? 100_000;
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** The endpoint requests are sent to. */
  get endpoint(): string {
    return this.url.href;
  }

  /** The JSON body sent for a request (exposed for tests and diagnostics). */
  buildRequestBody(request: ReplyRequest): ChatCompletionRequestBody {
    const settings = request.bot.llm ?? {};
    const messages: ChatMessage[] = [];
    if (settings.systemPrompt !== undefined && settings.systemPrompt !== '') messages.push({ role: 'system', content: settings.systemPrompt });
    const history = this.maxHistoryTurns > 0 ? request.history.slice(-this.maxHistoryTurns) : [];
    for (const turn of history) messages.push({ role: turn.role === 'bot' ? 'assistant' : 'user', content: turn.text });
    messages.push({ role: 'user', content: request.message });
    return {
      model: settings.model ?? this.model,
      messages,
      ...(settings.temperature === undefined ? {} : { temperature: settings.temperature }),
      stream: true,
    };
  }

  async reply(request: ReplyRequest, onDelta?: DeltaHandler): Promise<string> {
    request.signal?.throwIfAborted();
    const body = JSON.stringify(this.buildRequestBody(request));
    const run = new ReplyRun(request.signal, this.totalTimeoutMs);
    try {
      for (let attempt = 0; ; attempt += 1) {
        let failure: LlmError;
        try {
          return await this.attempt(body, run, onDelta);
        } catch (error) {
          if (error instanceof HandlerFailure) throw error.error;
          failure = this.explain(error, run);
        }
        if (!failure.retryable || run.delivered || attempt >= this.maxRetries) throw failure;
        const delay = this.retryDelay(failure, attempt);
        if (Date.now() + delay >= run.deadline) throw failure;
        log.info('llm: retrying', { event: 'llm.retry', attempt: attempt + 1, code: failure.code, upstreamStatus: failure.upstreamStatus, delayMs: Math.round(delay) });
        try {
          await sleep(delay, run.controller.signal);
        } catch (error) {
          throw this.explain(error, run);
        }
      }
    } finally {
      run.dispose();
    }
  }

  /**
   * Turns whatever an attempt threw into an LlmError; throws instead the caller's abort reason (the caller cancelled)
   * or a HandlerFailure as it is (the caller's own handler failed; `reply` unwraps it).
   */
  private explain(error: unknown, run: ReplyRun, attempt?: Attempt): LlmError {
    if (run.callerSignal?.aborted === true) throw run.callerSignal.reason;
    if (error instanceof HandlerFailure) throw error;
    if (run.timedOut) return run.fail('llm_timeout', `no complete answer within ${this.totalTimeoutMs} ms`, true);
    if (error instanceof LlmError) return error;
    if (attempt?.firstByteTimedOut === true) return run.fail('llm_timeout', `no answer within ${this.firstByteTimeoutMs} ms`, true);
    if (error instanceof TooLargeError) return run.fail('llm_stream_error', 'stream event larger than allowed', false);
    if (attempt?.headersReceived === true) {
      return run.fail('llm_stream_error', 'the connection ended before the reply was complete', true, { cause: error });
    }
    return run.fail('llm_unavailable', 'could not reach the LLM endpoint', true, { cause: error });
  }

  private retryDelay(failure: LlmError, attempt: number): number {
    if (failure.retryAfterMs !== undefined) return Math.min(failure.retryAfterMs, this.maxRetryDelayMs);
    const backoff = Math.min(this.retryBaseDelayMs * 2 ** attempt, this.maxRetryDelayMs);
    return backoff / 2 + Math.random() * (backoff / 2);
  }

  private async attempt(body: string, run: ReplyRun, onDelta: DeltaHandler | undefined): Promise<string> {
    // A retry starts afresh: it only happens while nothing was handed to onDelta.
    run.text = '';
    const controller = new AbortController();
    const state: Attempt = { firstByteTimedOut: false, headersReceived: false };
    const forward = (): void => controller.abort();
    run.controller.signal.addEventListener('abort', forward, { once: true });
    const timer = setTimeout(() => {
      state.firstByteTimedOut = true;
      controller.abort();
    }, this.firstByteTimeoutMs);
    const firstByte = (): void => clearTimeout(timer);
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream, application/json' };
      if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
      const response = await this.fetch(this.url, { method: 'POST', headers, body, signal: controller.signal, redirect: 'manual' });
      state.headersReceived = true;
      const contentType = response.headers.get('content-type')?.toLowerCase() ?? '';
      if (response.status < 200 || response.status >= 300) {
        throw await this.statusError(response, run, firstByte);
      }
      if (contentType.includes('text/event-stream')) return await this.readStream(response, run, onDelta, firstByte);
      if (contentType.includes('json')) return await this.readJson(response, run, onDelta, firstByte);
      void response.body?.cancel().catch(() => undefined);
      throw run.fail('llm_unavailable', 'the LLM endpoint answered with an unexpected content type', true, { upstreamStatus: response.status });
    } catch (error) {
      throw this.explain(error, run, state);
    } finally {
      clearTimeout(timer);
      run.controller.signal.removeEventListener('abort', forward);
    }
  }

  private async statusError(response: Response, run: ReplyRun, firstByte: () => void): Promise<LlmError> {
    const status = response.status;
    const retryAfterMs = parseRetryAfter(response.headers);
    let details: unknown;
    try {
      details = JSON.parse(await readBounded(response, 64 * 1024, firstByte));
    } catch {
      details = undefined;
    }
    const provider = describeProviderError(details);
    const extra = { upstreamStatus: status, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
    if (status === 429) return run.fail('llm_rate_limited', `the LLM endpoint is rate limiting (429${provider.label})`, true, extra);
    if (status >= 500) return run.fail('llm_unavailable', `the LLM endpoint failed (${status}${provider.label})`, true, extra);
    if (status >= 300 && status < 400) return run.fail('llm_bad_request', `the LLM endpoint redirected (${status}); set LLM_BASE_URL to the final URL`, false, extra);
    return run.fail('llm_bad_request', `the LLM endpoint refused the request (${status}${provider.label})`, false, extra);
  }

  private async deliver(content: string, run: ReplyRun, onDelta: DeltaHandler | undefined): Promise<void> {
    if (content === '') return;
    if (run.text.length + content.length > this.maxReplyChars) {
      throw run.fail('llm_stream_error', `the reply exceeded ${this.maxReplyChars} characters`, false);
    }
    run.text += content;
    if (onDelta === undefined) return;
    run.delivered = true;
    try {
      await onDelta(content);
    } catch (error) {
      throw new HandlerFailure(error);
    }
  }

  /** An error object in the stream: before any delivery it may be retried like the matching HTTP status. */
  private streamFailure(payload: unknown, run: ReplyRun): LlmError {
    const provider = describeProviderError(payload);
    if (!run.delivered) {
      const kind = `${provider.type ?? ''} ${provider.code ?? ''}`;
      if (kind.includes('rate_limit')) return run.fail('llm_rate_limited', `the LLM endpoint is rate limiting${provider.label}`, true);
      if (provider.type !== undefined && BAD_REQUEST_TYPES.has(provider.type)) {
        return run.fail('llm_bad_request', `the LLM endpoint refused the request${provider.label}`, false);
      }
    }
    return run.fail('llm_stream_error', `the LLM endpoint reported an error mid-stream${provider.label}`, true);
  }

  /** Handles one event; true once the stream is complete (`[DONE]`). */
  private async onEvent(event: SseEvent, run: ReplyRun, onDelta: DeltaHandler | undefined): Promise<boolean> {
    if (event.data.trim() === '[DONE]') return true;
    let payload: unknown;
    try {
      payload = JSON.parse(event.data);
    } catch {
      throw run.fail('llm_stream_error', 'the LLM endpoint sent a malformed stream event', true);
    }
    const chunk = streamChunk.safeParse(payload);
    if (event.event === 'error' || !chunk.success || (chunk.data.error !== undefined && chunk.data.error !== null)) {
      throw this.streamFailure(payload, run);
    }
    const choices = chunk.data.choices ?? [];
    const choice = choices.find((candidate) => (candidate.index ?? 0) === 0) ?? choices[0];
    await this.deliver(choice?.delta?.content ?? '', run, onDelta);
    return false;
  }

  private async readStream(response: Response, run: ReplyRun, onDelta: DeltaHandler | undefined, firstByte: () => void): Promise<string> {
    const reader = bodyReader(response);
    if (reader === undefined) throw run.fail('llm_stream_error', 'the LLM endpoint sent an empty stream', true);
    const decoder = new TextDecoder();
    const parser = new SseParser();
    let complete = false;
    try {
      const handle = async (events: SseEvent[]): Promise<void> => {
        for (const event of events) {
          complete = await this.onEvent(event, run, onDelta);
          if (complete) return;
        }
      };
      while (!complete) {
        const { value, done } = await reader.read();
        if (done) break;
        firstByte();
        await handle(parser.push(decoder.decode(value, { stream: true })));
      }
      if (!complete) await handle([...parser.push(decoder.decode()), ...parser.end()]);
      if (!complete) throw run.fail('llm_stream_error', 'the stream ended before [DONE]', true);
      return run.text;
    } finally {
      void reader.cancel().catch(() => undefined);
    }
  }

  private async readJson(response: Response, run: ReplyRun, onDelta: DeltaHandler | undefined, firstByte: () => void): Promise<string> {
    let payload: unknown;
    try {
      payload = JSON.parse(await readBounded(response, this.maxReplyChars * 4 + 64 * 1024, firstByte));
    } catch (error) {
      if (error instanceof TooLargeError) throw run.fail('llm_stream_error', 'the LLM endpoint answer is larger than allowed', false);
      if (error instanceof SyntaxError) throw run.fail('llm_unavailable', 'the LLM endpoint sent malformed JSON', true, { upstreamStatus: response.status });
      throw error;
    }
    const parsed = completion.safeParse(payload);
    if (!parsed.success || (parsed.data.error !== undefined && parsed.data.error !== null)) {
      const provider = describeProviderError(payload);
      throw run.fail('llm_unavailable', `the LLM endpoint sent no completion${provider.label}`, true, { upstreamStatus: response.status });
    }
    const choice = parsed.data.choices.find((candidate) => (candidate.index ?? 0) === 0) ?? parsed.data.choices[0];
    await this.deliver(choice?.message.content ?? '', run, onDelta);
    return run.text;
  }
}
