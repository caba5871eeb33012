import { matchRule } from './rules.js';
import type { DeltaHandler, ReplyEngine, ReplyRequest } from './types.js';

/** The answer when no rule matches and no LLM is in use. */
export const FALLBACK_REPLY = "Sorry, I don't know how to answer that yet.";

/** The built-in bot: the first matching rule's reply, else FALLBACK_REPLY. Never streams (onDelta is not called). */
export class RuleBot implements ReplyEngine {
  reply(request: ReplyRequest, _onDelta?: DeltaHandler): Promise<string> {
    if (request.signal?.aborted === true) return Promise.reject(request.signal.reason as Error);
    return Promise.resolve(matchRule(request.bot.rules, request.message) ?? FALLBACK_REPLY);
  }
}
