import type { ConversationStatus } from '../../shared/chat/index.js';
import { ConflictError } from '../../shared/errors.js';
import type { Caller } from '../auth/authenticate.js';
import { withConversation, type ConversationPurpose, type ConversationRow } from '../chat/access.js';
import type { ApiContext } from '../context.js';
import { findConversationView, type ConversationView } from './present.js';

/** An operator takes a conversation over or hands it back to the bot; its visitor asks for a person. */
export type HandoffChange = 'take-over' | 'hand-back' | 'ask-for-person';

const purposeOf: Readonly<Record<HandoffChange, ConversationPurpose>> = {
  'take-over': 'operate',
  'hand-back': 'operate',
  'ask-for-person': 'write',
};

interface HandoffState {
  status: ConversationStatus;
  operatorId: string | null;
}

/** The state a change leads to, or undefined when the conversation is already there (the change is a no-op). */
function nextState(change: HandoffChange, conversation: ConversationRow, caller: Caller): HandoffState | undefined {
  switch (change) {
    case 'take-over': {
      const operatorId = caller.kind === 'user' ? caller.auth.userId : null;
      return conversation.status === 'operator' && conversation.operator_id === operatorId ? undefined : { status: 'operator', operatorId };
    }
    case 'hand-back':
      return conversation.status === 'bot' ? undefined : { status: 'bot', operatorId: null };
    case 'ask-for-person':
      return conversation.status === 'bot' ? { status: 'waiting', operatorId: null } : undefined;
  }
}

/**
 * Applies a handoff change (idempotent: repeating one changes nothing) and tells the conversation's room and the
 * tenant's staff. Only web chat conversations can be handed to a person: an e-mail reply is the bot's.
 */
export async function changeHandoff(ctx: ApiContext, caller: Caller, conversationId: string, change: HandoffChange): Promise<{ view: ConversationView; changed: boolean }> {
  const { view, changed, tenantId } = await withConversation(ctx, caller, conversationId, purposeOf[change], async (trx, conversation) => {
    if (conversation.channel !== 'web') throw new ConflictError('handoff_not_supported', 'Only web chat conversations can be handed to a person');
    const next = nextState(change, conversation, caller);
    if (next !== undefined) await trx('conversations').where({ id: conversationId }).update({ status: next.status, operator_id: next.operatorId, updated_at: trx.fn.now() });
    return { view: await findConversationView(trx, conversationId), changed: next !== undefined, tenantId: conversation.tenant_id };
  });
  if (changed) ctx.chat.conversationStatus(tenantId, { conversationId, status: view.status, operatorId: view.operatorId });
  return { view, changed };
}
