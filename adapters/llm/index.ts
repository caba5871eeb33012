export type { BotProfile, BotRule, ChatTurn, DeltaHandler, LlmErrorCode, LlmSettings, ReplyEngine, ReplyRequest } from './types.js';
export { LlmError } from './types.js';
export {
  MAX_MATCHED_MESSAGE_LENGTH,
  MAX_MATCH_LENGTH,
  MAX_REPLY_LENGTH,
  MAX_RULES,
  botRuleSchema,
  botRulesSchema,
  foldForMatching,
  isRegexMatch,
  findRule,
  matchRule,
  parseBotRules,
} from './rules.js';
export { llmSettingsSchema } from './settings.js';
export { FALLBACK_REPLY, RuleBot } from './rule-bot.js';
export { DEFAULT_LLM_MODEL, OpenAiChatClient, type OpenAiChatClientOptions } from './openai.js';
export { parseRetryAfter, type ChatCompletionRequestBody, type ChatMessage } from './wire.js';
export { createReplyEngine, type ReplyEngineOptions } from './engine.js';
