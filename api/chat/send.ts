import { insertMessage, storeMessage, toMessageEvent, type StoredMessage } from '../../shared/chat/index.js';
import type { Knex } from 'knex';
import { z } from 'zod';
import { AppError, ConflictError, NotFoundError, ValidationError } from '../../shared/errors.js';
import { fileName, type FileRow } from '../../shared/files/index.js';
import { log } from '../../shared/log/index.js';
import type { Caller } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';
import { actorOf, conversationFor, isParticipant, tenantOf, withConversation, type ConversationRow } from './access.js';

/** Longest message text accepted, in characters. */
export const MAX_MESSAGE_CHARS = 16_000;

/** Most files one message may carry. */
export const MAX_ATTACHMENTS = 10;
export const attachmentIdsSchema = z.array(z.uuid()).max(MAX_ATTACHMENTS);

/**
 * The caller's own files, in the order given: an id that is not the caller's (another user's, another tenant's,
 * unknown) is refused as not found, a file that failed to store as invalid. Guests own no files.
 */
async function ownFiles(trx: Knex.Transaction, caller: Caller, ids: readonly string[]): Promise<FileRow[]> {
  if (ids.length === 0) return [];
  const unique = [...new Set(ids)];
  if (caller.kind !== 'user') throw new NotFoundError('No such file');
  const rows = await trx('files').whereIn('id', unique).where({ owner_id: caller.auth.userId }).select<FileRow[]>('*');
  const byId = new Map(rows.map((row) => [row.id, row]));
  return unique.map((id) => {
    const row = byId.get(id);
    if (row === undefined) throw new AppError('not_found', 'No such file', { status: 404, field: 'attachments' });
    if (row.status === 'failed') throw new ValidationError('A file that could not be stored cannot be attached', 'attachments');
    return row;
  });
}

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

interface Stored {
  message: StoredMessage;
  created: boolean;
  conversation: ConversationRow;
  botAnswers: boolean;
}

/** Who writes: the conversation's visitor (`user`), or staff as `operator` in a conversation taken over (else 409). */
function writerIn(caller: Caller, conversation: ConversationRow): { role: 'user' | 'operator'; botAnswers: boolean } {
  const role = isParticipant(caller, conversation) ? 'user' : 'operator';
  if (role === 'operator' && conversation.status !== 'operator') throw new ConflictError('handoff_required', 'Take the conversation over before writing in it');
  return { role, botAnswers: role === 'user' && conversation.status === 'bot' };
}

/** A message of text only, the chat's hot path: two round trips (the conversation, then the message), no transaction. */
async function storeText(ctx: ApiContext, caller: Caller, conversationId: string, text: string, clientMessageId: string | undefined): Promise<Stored> {
  const conversation = await conversationFor(ctx, caller, conversationId, 'send');
  const { role, botAnswers } = writerIn(caller, conversation);
  const result = await storeMessage(ctx.kernel.db, ctx.kernel.keys.columnRing, { tenantId: conversation.tenant_id, conversationId, role, text, clientMessageId });
  return { ...result, conversation, botAnswers };
}

/** A message with files: the files are checked and linked to it in the message's own transaction. */
async function storeWithFiles(ctx: ApiContext, caller: Caller, conversationId: string, text: string, clientMessageId: string | undefined, attachmentIds: readonly string[]): Promise<Stored> {
  return withConversation(ctx, caller, conversationId, 'send', async (trx, conversation) => {
    const { role, botAnswers } = writerIn(caller, conversation);
    const files = await ownFiles(trx, caller, attachmentIds);
    const result = await insertMessage(trx, ctx.kernel.keys.columnRing, { tenantId: conversation.tenant_id, conversationId, role, text, clientMessageId });
    if (!result.created || files.length === 0) return { ...result, conversation, botAnswers };
    await trx('message_attachments').insert(files.map((file, position) => ({ tenant_id: conversation.tenant_id, message_id: result.message.messageId, file_id: file.id, position })));
    const attachments = files.map((file) => ({ id: file.id, name: fileName(ctx.kernel.keys.columnRing, file), size: Number(file.size), type: file.content_type }));
    return { message: { ...result.message, attachments }, created: true, conversation, botAnswers };
  });
}

/**
 * Accepts a message: from the conversation's visitor (role `user`), or from staff as an operator (role `operator`,
 * only while the conversation is taken over). Stored encrypted; a visitor's message in a conversation the bot
 * answers then gets a `bot-reply` job (its id is the message id, so a repeat never makes a second job); then
 * `message:new` to the room. A repeated clientMessageId returns the first message.
 */
export async function acceptMessage(
  ctx: ApiContext,
  caller: Caller,
  conversationId: string,
  text: string,
  clientMessageId: string | undefined,
  origin: MessageOrigin,
  attachmentIds: readonly string[] = [],
): Promise<AcceptedMessage> {
  if (text.length > MAX_MESSAGE_CHARS) throw new AppError('message_too_large', `A message may have at most ${MAX_MESSAGE_CHARS} characters`, { status: 413, field: 'text' });
  const { message, created, conversation, botAnswers } =
    attachmentIds.length === 0 ? await storeText(ctx, caller, conversationId, text, clientMessageId) : await storeWithFiles(ctx, caller, conversationId, text, clientMessageId, attachmentIds);
  const { tenant_id: tenantId, bot_id: botId } = conversation;
  // The reply job, the broadcast and the audit event leave together (the API's Redis commands of one moment share a
  // write); the audit event is the stored message's whether or not the job could be added.
  const replyJob = botAnswers ? ctx.kernel.queues.enqueue('bot-reply', 'reply', { tenantId, conversationId, messageId: message.messageId, botId }, { jobId: message.messageId }) : undefined;
  if (created) {
    ctx.chat.messageNew(toMessageEvent(message));
    // One data.write per accepted message, never its text.
    const recorded = ctx.kernel.audit
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
    await Promise.allSettled([replyJob, recorded]);
  }
  await replyJob;
  return { messageId: message.messageId, duplicate: !created };
}
