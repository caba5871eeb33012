import type { Config } from '../../shared/config/index.js';
import { OpenAiChatClient, type OpenAiChatClientOptions } from './openai.js';
import { FALLBACK_REPLY } from './rule-bot.js';
import { matchRule } from './rules.js';
import type { DeltaHandler, ReplyEngine, ReplyRequest } from './types.js';

export interface ReplyEngineOptions {
  /** Replaces the client built from `config.llm` (tests, or another provider). */
  llm?: ReplyEngine;
  /** Timeouts, retries and the like for the client built from `config.llm`. */
  client?: Omit<OpenAiChatClientOptions, 'baseUrl' | 'apiKey' | 'model'>;
}

/**
 * The reply engine of the server: a bot's rules first; when none matches, the LLM when the bot has `llm` settings
 * and the server has an endpoint (`LLM_BASE_URL`), else FALLBACK_REPLY. LLM failures reject with LlmError.
 */
export function createReplyEngine(config: Pick<Config, 'llm'>, options: ReplyEngineOptions = {}): ReplyEngine {
  const llm =
    options.llm ??
    (config.llm === undefined
      ? undefined
      : new OpenAiChatClient({ ...options.client, baseUrl: config.llm.baseUrl, apiKey: config.llm.apiKey, model: config.llm.model }));
  return {
    async reply(request: ReplyRequest, onDelta?: DeltaHandler): Promise<string> {
      request.signal?.throwIfAborted();
      const ruled = matchRule(request.bot.rules, request.message);
      if (ruled !== undefined) return ruled;
      if (request.bot.llm !== null && llm !== undefined) return llm.reply(request, onDelta);
      return FALLBACK_REPLY;
    },
  };
}
