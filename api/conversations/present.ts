import type { Knex } from 'knex';
import type { ConversationStatus } from '../../shared/chat/index.js';

/** A conversation as the console and its visitor see it. */
export interface ConversationView {
  id: string;
  botId: string;
  botName: string;
  channel: 'web' | 'email';
  status: ConversationStatus;
  visitor: 'guest' | 'user' | 'email';
  operatorId: string | null;
  lastActivityAt: string;
  createdAt: string;
}

export interface ConversationViewRow {
  id: string;
  bot_id: string;
  bot_name: string;
  channel: 'web' | 'email';
  status: ConversationStatus;
  guest: boolean;
  operator_id: string | null;
  last_activity_at: Date;
  created_at: Date;
}

export function presentConversation(row: ConversationViewRow): ConversationView {
  return {
    id: row.id,
    botId: row.bot_id,
    botName: row.bot_name,
    channel: row.channel,
    status: row.status,
    visitor: row.channel === 'email' ? 'email' : row.guest ? 'guest' : 'user',
    operatorId: row.operator_id,
    lastActivityAt: row.last_activity_at.toISOString(),
    createdAt: row.created_at.toISOString(),
  };
}

/** The tenant's conversations with their bot's name (call inside a tenant-scoped transaction). */
export function conversationViews(trx: Knex.Transaction): Knex.QueryBuilder {
  return trx('conversations as c')
    .join('bots as b', 'b.id', 'c.bot_id')
    .select('c.id', 'c.bot_id', 'b.name as bot_name', 'c.channel', 'c.status', 'c.guest', 'c.operator_id', 'c.last_activity_at', 'c.created_at');
}

export async function findConversationView(trx: Knex.Transaction, id: string): Promise<ConversationView> {
  const row = (await conversationViews(trx).where('c.id', id).first()) as ConversationViewRow | undefined;
  if (row === undefined) throw new Error('conversation vanished inside its transaction');
  return presentConversation(row);
}
