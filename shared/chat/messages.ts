import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { z } from 'zod';
import { openString, sealString, type KeyRing } from '../crypto/index.js';
import { isUuid, queryPrepared, TENANT_SCOPE_VALUE_SQL, withTenant } from '../db/index.js';
import { ValidationError } from '../errors.js';
import { attachmentsOf, type AttachmentSummary } from '../files/index.js';
import type { MessageNewEvent, MessageRole, MessageSource } from './events.js';

export interface StoredMessage {
  messageId: string;
  conversationId: string;
  role: MessageRole;
  text: string;
  createdAt: string;
  replyTo: string | null;
  attachments?: AttachmentSummary[];
  sources?: MessageSource[];
}

/** A `messages` row as MESSAGE_COLUMNS selects it. */
export interface MessageRow {
  id: string;
  conversation_id: string;
  role: MessageRole;
  text_ciphertext: string;
  created_at: Date;
  reply_to: string | null;
  sources_ciphertext: string | null;
}

/** The ciphertext is bound to its row: moved to another message it no longer decrypts. */
const textAad = (messageId: string): string => `messages.text:${messageId}`;
const sourcesAad = (messageId: string): string => `messages.sources:${messageId}`;
/** What a message's sealed sources must hold once opened (the row is authentic; the shape is still checked). */
const sourcesSchema = z.array(z.strictObject({ documentId: z.string(), title: z.string(), position: z.string() }));
const COLUMNS = ['id', 'conversation_id', 'role', 'text_ciphertext', 'created_at', 'reply_to', 'sources_ciphertext'];
/** What a statement selects from `messages` for openMessageRow. */
export const MESSAGE_COLUMNS: readonly string[] = COLUMNS;

function openSources(ring: KeyRing, row: MessageRow): MessageSource[] | undefined {
  if (row.sources_ciphertext === null) return undefined;
  return sourcesSchema.parse(JSON.parse(openString(ring, row.sources_ciphertext, sourcesAad(row.id))));
}

/** A stored message from its row, decrypted (its ciphertexts are bound to the row's id). */
export function openMessageRow(ring: KeyRing, row: MessageRow): StoredMessage {
  return toMessage(ring, row);
}

function toMessage(ring: KeyRing, row: MessageRow): StoredMessage {
  return {
    messageId: row.id,
    conversationId: row.conversation_id,
    role: row.role,
    text: openString(ring, row.text_ciphertext, textAad(row.id)),
    createdAt: row.created_at.toISOString(),
    replyTo: row.reply_to,
    ...(row.sources_ciphertext === null ? {} : { sources: openSources(ring, row) }),
  };
}

export function toMessageEvent(message: StoredMessage): MessageNewEvent {
  const { conversationId, messageId, role, text, createdAt, attachments, sources } = message;
  return {
    conversationId,
    messageId,
    role,
    text,
    createdAt,
    ...(attachments === undefined || attachments.length === 0 ? {} : { attachments }),
    ...(sources === undefined || sources.length === 0 ? {} : { sources }),
  };
}

export interface NewMessage {
  /** Chosen by the caller when the id was already announced (streamed chunks); random otherwise. */
  id?: string;
  tenantId: string;
  conversationId: string;
  role: MessageRole;
  text: string;
  clientMessageId?: string | undefined;
  replyTo?: string | undefined;
  /** The knowledge sources of a bot's answer. */
  sources?: MessageSource[] | undefined;
}

/**
 * Stores a message encrypted. Idempotent: a repeated clientMessageId (per conversation) or a second reply to the
 * same message returns the row already stored, with `created: false`. Call inside a tenant-scoped transaction.
 */
export async function insertMessage(trx: Knex.Transaction, ring: KeyRing, input: NewMessage): Promise<{ message: StoredMessage; created: boolean }> {
  const created = await messageInsert(trx, ring, input, 'in-transaction');
  if (created !== undefined) return { message: created, created: true };
  const existing = await existingMessage(trx, input).first<MessageRow | undefined>(COLUMNS);
  if (existing === undefined) throw new Error('message conflict without an existing row');
  return { message: toMessage(ring, existing), created: false };
}

/**
 * Like insertMessage, as one statement in one round trip with no transaction around it: the INSERT … ON CONFLICT DO
 * NOTHING RETURNING scopes itself to the tenant (see tenantScopeValue). For a message stored on its own; a repeat
 * (rare) is read back in a transaction of its own.
 */
export async function storeMessage(db: Knex, ring: KeyRing, input: NewMessage): Promise<{ message: StoredMessage; created: boolean }> {
  const created = await messageInsert(db, ring, input, 'self-scoped');
  if (created !== undefined) return { message: created, created: true };
  return withTenant(db, input.tenantId, (trx) => insertMessage(trx, ring, input));
}

const INSERT_COLUMNS = 'INSERT INTO messages (id, tenant_id, conversation_id, role, text_ciphertext, client_message_id, reply_to, sources_ciphertext)';
/** The tenant value: bound as it is inside a tenant-scoped transaction, or the statement scopes itself (see tenantScopeValue). */
const TENANT_VALUE = { 'in-transaction': '?', 'self-scoped': TENANT_SCOPE_VALUE_SQL } as const;
const ON_CONFLICT = { reply: 'ON CONFLICT (reply_to) WHERE reply_to IS NOT NULL DO NOTHING', message: 'ON CONFLICT (conversation_id, client_message_id) DO NOTHING' } as const;
/**
 * The INSERT for a scope and kind of message: one of four fixed texts, named, so each pooled connection has
 * PostgreSQL parse and plan it once (a prepared statement) instead of once per message.
 */
function insertStatement(scope: keyof typeof TENANT_VALUE, kind: keyof typeof ON_CONFLICT): { name: string; text: string } {
  return { name: `botserver.messages.insert.${scope}.${kind}`, text: `${INSERT_COLUMNS} VALUES (?, ${TENANT_VALUE[scope]}, ?, ?, ?, ?, ?, ?) ${ON_CONFLICT[kind]} RETURNING created_at` };
}

/**
 * The INSERT of a new message, encrypted, that does nothing on a repeated clientMessageId or a second reply. The
 * stored message when it was inserted, made from the input (the text is not decrypted back); undefined on a repeat.
 */
async function messageInsert(db: Knex | Knex.Transaction, ring: KeyRing, input: NewMessage, scope: keyof typeof TENANT_VALUE): Promise<StoredMessage | undefined> {
  if (!isUuid(input.tenantId)) throw new ValidationError('Tenant id must be a UUID', 'tenantId');
  const id = input.id ?? randomUUID();
  const sources = input.sources === undefined || input.sources.length === 0 ? undefined : input.sources;
  const statement = insertStatement(scope, input.replyTo !== undefined ? 'reply' : 'message');
  const [row] = await queryPrepared<{ created_at: Date }>(db, statement.name, statement.text, [
    id,
    input.tenantId.toLowerCase(),
    input.conversationId,
    input.role,
    sealString(ring, input.text, textAad(id)),
    input.clientMessageId ?? null,
    input.replyTo ?? null,
    sources === undefined ? null : sealString(ring, JSON.stringify(sources), sourcesAad(id)),
  ]);
  if (row === undefined) return undefined;
  return {
    // As PostgreSQL gives uuids back: lower case.
    messageId: id.toLowerCase(),
    conversationId: input.conversationId.toLowerCase(),
    role: input.role,
    text: input.text,
    createdAt: row.created_at.toISOString(),
    replyTo: input.replyTo?.toLowerCase() ?? null,
    ...(sources === undefined ? {} : { sources }),
  };
}

/** The message a conflicting insert met: the reply to the same message, or the same clientMessageId's. */
function existingMessage(db: Knex | Knex.Transaction, input: NewMessage): Knex.QueryBuilder {
  return input.replyTo !== undefined
    ? db('messages').where({ reply_to: input.replyTo })
    : db('messages').where({ conversation_id: input.conversationId, client_message_id: input.clientMessageId ?? null });
}

export async function findMessage(trx: Knex.Transaction, ring: KeyRing, messageId: string): Promise<StoredMessage | undefined> {
  const row = await trx('messages').where({ id: messageId }).first<MessageRow | undefined>(COLUMNS);
  return row === undefined ? undefined : toMessage(ring, row);
}

export async function findReplyTo(trx: Knex.Transaction, ring: KeyRing, messageId: string): Promise<StoredMessage | undefined> {
  const row = await trx('messages').where({ reply_to: messageId }).first<MessageRow | undefined>(COLUMNS);
  return row === undefined ? undefined : toMessage(ring, row);
}

/**
 * How far before the last message a client saw a replay starts: `created_at` is the inserting transaction's start,
 * so a message committed after the one the client saw may carry an earlier time. Clients dedupe by messageId.
 */
const REPLAY_OVERLAP = "interval '10 seconds'";

/**
 * The conversation's messages, oldest first. `before`: the newest ones older than that message (history for the
 * bot). `after`: the oldest ones from shortly before that message on (a reconnecting client's replay), without it.
 */
export async function listMessages(
  trx: Knex.Transaction,
  ring: KeyRing,
  conversationId: string,
  options: { limit?: number; before?: StoredMessage; after?: string; withAttachments?: boolean } = {},
): Promise<StoredMessage[]> {
  const messages = await listMessageRows(trx, ring, conversationId, options);
  if (options.withAttachments !== true) return messages;
  const byMessage = await attachmentsOf(trx, ring, messages.map((message) => message.messageId));
  return messages.map((message) => {
    const attachments = byMessage.get(message.messageId);
    return attachments === undefined ? message : { ...message, attachments };
  });
}

async function listMessageRows(
  trx: Knex.Transaction,
  ring: KeyRing,
  conversationId: string,
  options: { limit?: number; before?: StoredMessage; after?: string },
): Promise<StoredMessage[]> {
  const limit = options.limit ?? 200;
  const query = trx('messages').where({ conversation_id: conversationId });
  if (options.after !== undefined) {
    const after = options.after;
    const rows = await query
      .where('created_at', '>=', trx('messages').select(trx.raw(`created_at - ${REPLAY_OVERLAP}`)).where({ id: after, conversation_id: conversationId }))
      .whereNot({ id: after })
      .orderBy([{ column: 'created_at', order: 'asc' }, { column: 'id', order: 'asc' }])
      .limit(limit)
      .select<MessageRow[]>(COLUMNS);
    return rows.map((row) => toMessage(ring, row));
  }
  if (options.before !== undefined) query.where('created_at', '<', options.before.createdAt).whereNot({ id: options.before.messageId });
  const rows = await query
    .orderBy([{ column: 'created_at', order: 'desc' }, { column: 'id', order: 'desc' }])
    .limit(limit)
    .select<MessageRow[]>(COLUMNS);
  return rows.reverse().map((row) => toMessage(ring, row));
}
