import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { insertMessage } from '../../shared/chat/index.js';
import { blindIndex, normaliseEmail, sealString } from '../../shared/crypto/index.js';
import { withTenant } from '../../shared/db/index.js';
import { recordAttachments, selectAttachments, skippedCount, stageAttachments, type StagedAttachment } from '../../shared/email/attachments.js';
import { emailMessageIdIndex, type EmailChannel } from '../../shared/email/channel.js';
import type { InboundMail } from '../../shared/email/mail.js';
import { extractMeta, inputText, normaliseSubject, skipReason, type InboundMeta, type SkipReason } from '../../shared/email/message.js';
import type { QuarantineReason } from '../../shared/email/stats.js';
import type { FileStaging } from '../../shared/files/index.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';
import type { EmailWorkerOptions } from './options.js';
import { withinReplyLimit } from './reply-limit.js';

/** The sealed inbound headers a reply needs are bound to their message; the subject to its conversation. */
export const metaAad = (messageId: string): string => `messages.email_meta:${messageId}`;
const subjectAad = (conversationId: string): string => `conversations.subject:${conversationId}`;

/** One mailbox as the store sees it. */
export interface MailboxScope {
  kernel: Kernel;
  botId: string;
  tenantId: string;
  options: EmailWorkerOptions;
  staging: FileStaging;
}

/** One entry of a batch, in UID order: a parsed mail to store, or a mail given up on. */
export type BatchItem =
  | { kind: 'mail'; uid: number; source: Buffer; mail: InboundMail }
  | { kind: 'quarantine'; uid: number; size: number; reason: QuarantineReason; attempts: number };

export type Outcome =
  | { kind: 'stored'; uid: number; messageId: string; conversationId: string; fileIds: string[] }
  | { kind: 'duplicate'; uid: number; messageId: string; conversationId: string; answered: boolean }
  | { kind: 'skipped'; uid: number; reason: SkipReason | 'own_reply' }
  | { kind: 'quarantined'; uid: number; reason: QuarantineReason };

function threadKey(kernel: Kernel, botId: string, meta: InboundMeta): string {
  return blindIndex(kernel.keys.blindIndexKey, 'conversations.email_thread', `${botId}\0${normaliseSubject(meta.subject)}\0${normaliseEmail(meta.from.address)}`);
}

/** The conversation an inbound mail continues: In-Reply-To, then References (newest first), then subject + sender. */
async function findThread(trx: Knex.Transaction, scope: MailboxScope, meta: InboundMeta): Promise<string | undefined> {
  const { kernel, botId } = scope;
  const candidates = [...(meta.inReplyTo === null ? [] : [meta.inReplyTo]), ...[...meta.references].reverse()];
  if (candidates.length > 0) {
    const indexes = candidates.map((id) => emailMessageIdIndex(kernel.keys.blindIndexKey, botId, id));
    const rows = await trx('messages')
      .join('conversations', 'conversations.id', 'messages.conversation_id')
      .whereIn('messages.email_message_id_index', indexes)
      .where('conversations.bot_id', botId)
      .select<Array<{ conversation_id: string; email_message_id_index: string }>>('messages.conversation_id', 'messages.email_message_id_index');
    for (const index of indexes) {
      const row = rows.find((candidate) => candidate.email_message_id_index === index);
      if (row !== undefined) return row.conversation_id;
    }
  }
  const bySubject = await trx('conversations')
    .where({ bot_id: botId, channel: 'email', email_thread_key: threadKey(kernel, botId, meta) })
    .where('updated_at', '>', trx.raw(`now() - make_interval(hours => ?)`, [scope.options.threadWindowHours]))
    .orderBy('updated_at', 'desc')
    .first<{ id: string } | undefined>('id');
  return bySubject?.id;
}

/**
 * Stores one mail as a user message of its thread, or skips it. Its accepted attachments are staged once it is known
 * the mail is new (its Message-ID row is about to be taken) and recorded in the same transaction.
 */
async function storeMail(trx: Knex.Transaction, scope: MailboxScope, channel: EmailChannel, item: Extract<BatchItem, { kind: 'mail' }>, staged: StagedAttachment[]): Promise<Outcome> {
  const { kernel, botId, tenantId } = scope;
  const { mail, uid } = item;
  const meta = extractMeta(mail, item.source);
  let reason: SkipReason | null = skipReason(mail, meta, channel.address);
  if (reason !== null || meta === undefined) return { kind: 'skipped', uid, reason: reason ?? 'no_sender' };
  const idIndex = emailMessageIdIndex(kernel.keys.blindIndexKey, botId, meta.messageId);
  const existing = await trx('messages').where({ email_message_id_index: idIndex }).first<{ id: string; conversation_id: string; role: string } | undefined>('id', 'conversation_id', 'role');
  if (existing !== undefined) {
    if (existing.role !== 'user') return { kind: 'skipped', uid, reason: 'own_reply' };
    const reply = await trx('messages').where({ reply_to: existing.id }).first<{ id: string } | undefined>('id');
    return { kind: 'duplicate', uid, messageId: existing.id, conversationId: existing.conversation_id, answered: reply !== undefined };
  }
  if (!(await withinReplyLimit(kernel, { tenantId, botId, limit: channel.maxRepliesPerSenderPerHour, sender: meta.from.address, messageIndex: idIndex }))) reason = 'rate_limited';
  if (reason !== null) return { kind: 'skipped', uid, reason };
  let conversationId = await findThread(trx, scope, meta);
  if (conversationId === undefined) {
    conversationId = randomUUID();
    await trx('conversations').insert({
      id: conversationId,
      tenant_id: tenantId,
      bot_id: botId,
      channel: 'email',
      email_thread_key: threadKey(kernel, botId, meta),
      subject_ciphertext: sealString(kernel.keys.columnRing, meta.subject, subjectAad(conversationId)),
    });
  } else {
    await trx('conversations').where({ id: conversationId }).update({ updated_at: trx.fn.now() });
  }
  const id = randomUUID();
  await insertMessage(trx, kernel.keys.columnRing, { id, tenantId, conversationId, role: 'user', text: inputText(mail) });
  await trx('messages').where({ id }).update({ email_message_id_index: idIndex, email_meta_ciphertext: sealString(kernel.keys.columnRing, JSON.stringify(meta), metaAad(id)) });
  const attachments = await selectAttachments(mail, { maxSize: kernel.config.maxUploadSize, allowedTypes: kernel.config.uploadTypes });
  const first = staged.length;
  if (attachments.accepted.length > 0) {
    await stageAttachments(scope.staging, kernel.keys.payloadRing, tenantId, attachments.accepted, staged);
    await recordAttachments(trx, kernel.keys.columnRing, tenantId, id, staged.slice(first));
  }
  const fileIds = staged.slice(first).map((file) => file.fileId);
  if (fileIds.length > 0 || skippedCount(attachments) > 0) {
    // Counts only: nothing of an attachment's name or content is logged.
    log.info('inbound mail attachments', { botId, stored: fileIds.length, skipped: { ...attachments.skipped } });
  }
  return { kind: 'stored', uid, messageId: id, conversationId, fileIds };
}

/**
 * Stores a batch of mails (UID order) in one transaction that also advances the mailbox's stored position to the
 * batch's last UID: a crash before the commit leaves nothing of the batch, after it all of it, so mail is neither
 * skipped nor repeated. Mails given up on are recorded in `email_quarantine` in the same transaction. When the
 * transaction fails, staged attachment files are removed (after a crash, the files worker's sweep removes them).
 */
export async function storeBatch(scope: MailboxScope, channel: EmailChannel, uidValidity: number, items: readonly BatchItem[]): Promise<Outcome[]> {
  const last = items.at(-1);
  if (last === undefined) return [];
  const { kernel, botId, tenantId } = scope;
  const staged: StagedAttachment[] = [];
  try {
    return await withTenant(kernel.db, tenantId, async (trx) => {
      const outcomes: Outcome[] = [];
      for (const item of items) {
        if (item.kind === 'quarantine') {
          await trx('email_quarantine')
            .insert({ id: randomUUID(), tenant_id: tenantId, bot_id: botId, uid_validity: uidValidity, uid: item.uid, reason: item.reason, attempts: item.attempts, size: item.size })
            .onConflict(['bot_id', 'uid_validity', 'uid'])
            .ignore();
          outcomes.push({ kind: 'quarantined', uid: item.uid, reason: item.reason });
          continue;
        }
        scope.options.inboundFault?.(item.source);
        outcomes.push(await storeMail(trx, scope, channel, item, staged));
      }
      await trx('email_mailboxes')
        .insert({ bot_id: botId, tenant_id: tenantId, uid_validity: uidValidity, last_uid: last.uid })
        .onConflict('bot_id')
        .merge({ uid_validity: uidValidity, last_uid: last.uid, updated_at: trx.fn.now() });
      return outcomes;
    });
  } catch (error) {
    await Promise.allSettled(staged.map((file) => scope.staging.remove(tenantId, file.fileId)));
    throw error;
  }
}
