import { insertMessage, toMessageEvent } from '../../shared/chat/index.js';
import { AppError } from '../../shared/errors.js';
import { log } from '../../shared/log/index.js';
import type { Caller } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';
import { actorOf, tenantOf, withConversation } from './access.js';

/** Longest message text accepted, in characters. */
export const MAX_MESSAGE_CHARS = 16_000;

/** Where a message came from, for its `data.write` audit event. */
export interface MessageOrigin {
  via: 'rest' | 'socket';
  ip: string | null;
  requestId?: string | null;
}

export interface AcceptedMessage {
  messageId: string;
  duplicate: boolean;
}

/**
 * Accepts a participant's message: stored encrypted, then a `bot-reply` job (its id is the message id, so a repeat
 * never makes a second job), then `message:new` to the room. A repeated clientMessageId returns the first message.
 */
export async function acceptUserMessage(ctx: ApiContext, caller: Caller, conversationId: string, text: string, clientMessageId: string | undefined, origin: MessageOrigin): Promise<AcceptedMessage> {
  if (text.length > MAX_MESSAGE_CHARS) throw new AppError('message_too_large', `A message may have at most ${MAX_MESSAGE_CHARS} characters`, { status: 413, field: 'text' });
  const { message, created, tenantId } = await withConversation(ctx, caller, conversationId, 'write', async (trx, conversation) => {
    const result = await insertMessage(trx, ctx.kernel.keys.columnRing, { tenantId: conversation.tenant_id, conversationId, role: 'user', text, clientMessageId });
    return { ...result, tenantId: conversation.tenant_id };
  });
  await ctx.kernel.queues.enqueue('bot-reply', 'reply', { tenantId, conversationId, messageId: message.messageId }, { jobId: message.messageId });
  if (created) {
    ctx.chat.messageNew(toMessageEvent(message));
    // One data.write per accepted message, never its text; after the reply job and the broadcast, so it adds no delay to them.
    await ctx.kernel.audit
      .record({
        type: 'data.write',
        outcome: 'success',
        tenantId: tenantOf(caller),
        actor: actorOf(caller),
        target: `message:${message.messageId}`,
        ip: origin.ip,
        requestId: origin.requestId ?? null,
        details: { conversationId, via: origin.via },
      })
      .catch((error: unknown) => log.error('audit event could not be recorded', { type: 'data.write', error: error instanceof Error ? error.message : String(error) }));
  }
  return { messageId: message.messageId, duplicate: !created };
}
