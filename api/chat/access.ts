import type { Request } from 'express';
import type { Knex } from 'knex';
import type { ConversationStatus } from '../../shared/chat/index.js';
import { isUuid, queryPrepared, withTenantFrom } from '../../shared/db/index.js';
import { NotFoundError, UnauthorizedError } from '../../shared/errors.js';
import type { Caller } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';

export interface ConversationRow {
  id: string;
  tenant_id: string;
  bot_id: string;
  user_id: string | null;
  guest: boolean;
  channel: 'web' | 'email';
  status: ConversationStatus;
  operator_id: string | null;
}

/**
 * What the caller wants to do with a conversation: `read` it (its participant, or staff), `write` to it as its
 * visitor (its participant), `operate` it (staff: take over, hand back), or `send` a message (its participant as
 * the visitor, or staff as an operator).
 */
export type ConversationPurpose = 'read' | 'write' | 'operate' | 'send';

/** The caller from an HTTP request: a signed-in user or a public bot's guest. */
export function callerOf(req: Request): Caller {
  if (req.auth !== undefined) return { kind: 'user', auth: req.auth };
  if (req.guest !== undefined) return { kind: 'guest', guest: req.guest };
  throw new UnauthorizedError();
}

export function tenantOf(caller: Caller): string {
  return caller.kind === 'user' ? caller.auth.tenantId : caller.guest.tid;
}

/** Who the caller is in the audit trail: the user's id, or the guest token's `guest:<uuid>` subject. */
export function actorOf(caller: Caller): string {
  return caller.kind === 'user' ? caller.auth.userId : caller.guest.sub;
}

/** An admin or operator of the caller's tenant. */
export function isStaff(caller: Caller): boolean {
  return caller.kind === 'user' && (caller.auth.roles.includes('operator') || caller.auth.roles.includes('admin'));
}

/** The conversation's own visitor: its user, or a guest holding its token. */
export function isParticipant(caller: Caller, conversation: ConversationRow): boolean {
  if (caller.kind === 'guest') return conversation.guest && conversation.id === caller.guest.cid;
  return conversation.user_id === caller.auth.userId;
}

/**
 * Runs `fn` in the caller's tenant with the conversation, when the caller may use it for `purpose` (see
 * ConversationPurpose). Anyone else gets 404, so existence does not leak.
 */
export async function withConversation<T>(
  ctx: ApiContext,
  caller: Caller,
  conversationId: string,
  purpose: ConversationPurpose,
  fn: (trx: Knex.Transaction, conversation: ConversationRow) => Promise<T>,
): Promise<T> {
  if ((caller.kind === 'guest' && caller.guest.cid !== conversationId) || !isUuid(conversationId)) throw new NotFoundError('No such conversation');
  // The conversation is read in the round trip that scopes the transaction to the tenant.
  const first = ctx.kernel.db('conversations').where({ id: conversationId }).select(CONVERSATION_COLUMNS).limit(1);
  return withTenantFrom<ConversationRow, T>(ctx.kernel.db, tenantOf(caller), first, async (trx, [conversation]) => {
    if (conversation === undefined || !mayUse(caller, conversation, purpose)) throw new NotFoundError('No such conversation');
    return fn(trx, conversation);
  });
}

/**
 * The conversation, when the caller may use it for `purpose` (else 404, as withConversation), read in one round trip
 * with no transaction: for a caller whose next step is a single statement that scopes itself (see storeMessage).
 * The read is `app_conversation` (migration 015), a prepared statement that sets the tenant and reads under RLS.
 */
export async function conversationFor(ctx: ApiContext, caller: Caller, conversationId: string, purpose: ConversationPurpose): Promise<ConversationRow> {
  if ((caller.kind === 'guest' && caller.guest.cid !== conversationId) || !isUuid(conversationId)) throw new NotFoundError('No such conversation');
  const tenantId = tenantOf(caller);
  if (!isUuid(tenantId)) throw new NotFoundError('No such conversation');
  const [conversation] = await queryPrepared<ConversationRow>(ctx.kernel.db, 'botserver.app_conversation', 'SELECT * FROM app_conversation(?, ?)', [tenantId, conversationId]);
  if (conversation === undefined || !mayUse(caller, conversation, purpose)) throw new NotFoundError('No such conversation');
  return conversation;
}

const CONVERSATION_COLUMNS: ReadonlyArray<keyof ConversationRow> = ['id', 'tenant_id', 'bot_id', 'user_id', 'guest', 'channel', 'status', 'operator_id'];

function mayUse(caller: Caller, conversation: ConversationRow, purpose: ConversationPurpose): boolean {
  switch (purpose) {
    case 'write':
      return isParticipant(caller, conversation);
    case 'operate':
      return isStaff(caller);
    case 'read':
    case 'send':
      return isParticipant(caller, conversation) || isStaff(caller);
  }
}
