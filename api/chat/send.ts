import { insertMessage, toMessageEvent } from '../../shared/chat/index.js';
import { AppError } from '../../shared/errors.js';
import type { Caller } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';
import { withConversation } from './access.js';

/** Longest message text accepted, in characters. */
export const MAX_MESSAGE_CHARS = 16_000;

export interface AcceptedMessage {
  messageId: string;
  duplicate: boolean;
}

/**
 * Accepts a participant's message: stored encrypted, then a `bot-reply` job (its id is the message id, so a repeat
 * never makes a second job), then `message:new` to the room. A repeated clientMessageId returns the first message.
 */
export async function acceptUserMessage(ctx: ApiContext, caller: Caller, conversationId: string, text: string, clientMessageId?: string): Promise<AcceptedMessage> {
  if (text.length > MAX_MESSAGE_CHARS) throw new AppError('message_too_large', `A message may have at most ${MAX_MESSAGE_CHARS} characters`, { status: 413, field: 'text' });
  const { message, created, tenantId } = await withConversation(ctx, caller, conversationId, 'write', async (trx, conversation) => {
    const result = await insertMessage(trx, ctx.kernel.keys.columnRing, { tenantId: conversation.tenant_id, conversationId, role: 'user', text, clientMessageId });
    return { ...result, tenantId: conversation.tenant_id };
  });
  await ctx.kernel.queues.enqueue('bot-reply', 'reply', { tenantId, conversationId, messageId: message.messageId }, { jobId: message.messageId });
  if (created) ctx.chat.messageNew(toMessageEvent(message));
  return { messageId: message.messageId, duplicate: !created };
}
