import { AppError } from '../../shared/errors.js';

/** One earlier turn of a conversation. */
export interface ChatTurn {
  role: 'user' | 'bot';
  text: string;
}

/**
 * A rule of a bot: `match` is a case-insensitive word or phrase, or `/regex/flags`; `reply` is the answer;
 * `handoff` also puts the conversation in the waiting list for a person.
 */
export interface BotRule {
  match: string;
  reply: string;
  handoff?: boolean;
}

/** A bot's use of the server's OpenAI-compatible endpoint (`LLM_*`). */
export interface LlmSettings {
  model?: string;
  systemPrompt?: string;
  temperature?: number;
}

/** What a reply engine needs to know about a bot. */
export interface BotProfile {
  name: string;
  rules: BotRule[];
  llm: LlmSettings | null;
}

export interface ReplyRequest {
  bot: BotProfile;
  /** Earlier turns, oldest first, without the new message. */
  history: ChatTurn[];
  /** The new message to answer. */
  message: string;
  /** Cancels the reply; the promise then rejects with `signal.reason`. */
  signal?: AbortSignal;
}

/** Receives each piece of a streamed reply, in order; awaited before the next piece is read. */
export type DeltaHandler = (delta: string) => Promise<void> | void;

export interface ReplyEngine {
  /**
   * Answers one message and resolves with the whole reply. `onDelta` is called only while an LLM streams; when it
   * is called at all, the pieces joined are exactly the resolved text.
   */
  reply(request: ReplyRequest, onDelta?: DeltaHandler): Promise<string>;
}

export type LlmErrorCode = 'llm_unavailable' | 'llm_rate_limited' | 'llm_bad_request' | 'llm_timeout' | 'llm_stream_error';

const statusOf: Record<LlmErrorCode, number> = {
  llm_unavailable: 502,
  llm_rate_limited: 503,
  llm_bad_request: 502,
  llm_timeout: 504,
  llm_stream_error: 502,
};

/**
 * A failure talking to the LLM endpoint. The message is a short summary written here (status, the provider's error
 * type/code when they are plain identifiers), safe for logs; the provider's own text is never kept, and the error
 * is never shown to clients (`expose: false`), who see only the code.
 */
export class LlmError extends AppError {
  declare readonly code: LlmErrorCode;
  /** Whether trying the same request again later may succeed. */
  readonly retryable: boolean;
  /** Whether some of the reply had already been handed to `onDelta` when this happened. */
  readonly partial: boolean;
  /** The endpoint's HTTP status, when it answered with one. */
  readonly upstreamStatus: number | undefined;
  /** How long the endpoint asked to wait before trying again (`Retry-After`), when it said. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: LlmErrorCode,
    summary: string,
    options: { retryable: boolean; partial?: boolean; upstreamStatus?: number; retryAfterMs?: number; cause?: unknown },
  ) {
    super(code, summary, { status: statusOf[code], expose: false, cause: options.cause });
    this.retryable = options.retryable;
    this.partial = options.partial ?? false;
    this.upstreamStatus = options.upstreamStatus;
    this.retryAfterMs = options.retryAfterMs;
  }
}
