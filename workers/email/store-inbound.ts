import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { insertMessage } from '../../shared/chat/index.js';
import { blindIndex, normaliseEmail, sealString } from '../../shared/crypto/index.js';
import { withTenant } from '../../shared/db/index.js';
import { recordAttachments, selectAttachments, skippedCount, stageAttachments, type AttachmentSelection, type StagedAttachment } from '../../shared/email/attachments.js';
import { emailMessageIdIndex, type EmailChannel } from '../../shared/email/channel.js';
import type { InboundMail } from '../../shared/email/mail.js';
import { extractMeta, inputText, normaliseSubject, skipReason, type InboundMeta, type SkipReason } from '../../shared/email/message.js';
import type { QuarantineReason } from '../../shared/email/stats.js';
import type { FileStaging } from '../../shared/files/index.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';
import type { EmailWorkerOptions } from './options.js';
import { withinReplyLimits } from './reply-limit.js';

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
  | { kind: 'skipped'; uid: number; reason: SkipReason | 'own_reply' | 'repeated' }
  | { kind: 'quarantined'; uid: number; reason: QuarantineReason };

function threadKey(kernel: Kernel, botId: string, meta: InboundMeta): string {
  return blindIndex(kernel.keys.blindIndexKey, 'conversations.email_thread', `${botId}\0${normaliseSubject(meta.subject)}\0${normaliseEmail(meta.from.address)}`);
}

/** A mail of the batch with what its rules decided before any row is read. */
interface Candidate {
  uid: number;
  mail: InboundMail;
  meta: InboundMeta;
  idIndex: string;
  /** Indexes of In-Reply-To, then References newest first: the conversations it may continue. */
  threadIndexes: string[];
  threadKey: string;
  attachments: AttachmentSelection;
}

/** What the rows of the whole batch say, read with one query each. */
interface BatchLookups {
  /** Messages of this bot by Message-ID index (the mails themselves, and the ones they answer). */
  messages: Map<string, { id: string; conversationId: string; role: string; inBatch?: true }>;
  /** Stored user messages (of `messages`) that already have a reply. */
  answered: Set<string>;
  /** The newest live conversation per subject-and-sender key. */
  threads: Map<string, string>;
}

async function lookUp(trx: Knex.Transaction, scope: MailboxScope, candidates: readonly Candidate[]): Promise<BatchLookups> {
  const indexes = [...new Set(candidates.flatMap((candidate) => [candidate.idIndex, ...candidate.threadIndexes]))];
  const rows =
    indexes.length === 0
      ? []
      : await trx('messages')
          .join('conversations', 'conversations.id', 'messages.conversation_id')
          .whereIn('messages.email_message_id_index', indexes)
          .where('conversations.bot_id', scope.botId)
          .select<Array<{ id: string; conversation_id: string; role: string; email_message_id_index: string }>>('messages.id', 'messages.conversation_id', 'messages.role', 'messages.email_message_id_index');
  const messages = new Map(rows.map((row) => [row.email_message_id_index, { id: row.id, conversationId: row.conversation_id, role: row.role }]));
  const own = candidates.map((candidate) => messages.get(candidate.idIndex)).filter((row) => row?.role === 'user').map((row) => row?.id ?? '');
  const answered = new Set(own.length === 0 ? [] : await trx('messages').whereIn('reply_to', own).pluck<string[]>('reply_to'));
  const keys = [...new Set(candidates.map((candidate) => candidate.threadKey))];
  const threadRows =
    keys.length === 0
      ? []
      : await trx('conversations')
          .where({ bot_id: scope.botId, channel: 'email' })
          .whereIn('email_thread_key', keys)
          .where('updated_at', '>', trx.raw(`now() - make_interval(hours => ?)`, [scope.options.threadWindowHours]))
          .orderBy('updated_at', 'asc')
          .select<Array<{ id: string; email_thread_key: string }>>('id', 'email_thread_key');
  // Oldest first: the newest conversation of each key is the one left in the map.
  const threads = new Map(threadRows.map((row) => [row.email_thread_key, row.id]));
  return { messages, answered, threads };
}

/**
 * Stores a batch of mails (UID order) in one transaction that also advances the mailbox's stored position to the
 * batch's last UID: a crash before the commit leaves nothing of the batch, after it all of it, so mail is neither
 * skipped nor repeated. The rows the batch needs are read with one query each and written with one statement each
 * (conversations, their activity, the messages' e-mail columns), but for one INSERT per message. A mail continues
 * the conversation of its In-Reply-To, else of its References (newest first), else of the same subject and sender
 * within the thread window, also when that conversation starts earlier in the same batch. Mails given up on are
 * recorded in `email_quarantine`. Accepted attachments are staged once the mail is known to be new and recorded in
 * the transaction; when it fails, they are removed (after a crash, the files worker's sweep removes them).
 */
export async function storeBatch(scope: MailboxScope, channel: EmailChannel, uidValidity: number, items: readonly BatchItem[]): Promise<Outcome[]> {
  const last = items.at(-1);
  if (last === undefined) return [];
  const { kernel, botId, tenantId } = scope;
  const outcomes = new Map<number, Outcome>();
  const candidates: Candidate[] = [];
  for (const item of items) {
    if (item.kind === 'quarantine') {
      outcomes.set(item.uid, { kind: 'quarantined', uid: item.uid, reason: item.reason });
      continue;
    }
    scope.options.inboundFault?.(item.source);
    const meta = extractMeta(item.mail, item.source);
    const reason = skipReason(item.mail, meta, channel.address);
    if (reason !== null || meta === undefined) {
      outcomes.set(item.uid, { kind: 'skipped', uid: item.uid, reason: reason ?? 'no_sender' });
      continue;
    }
    const threadIds = [...(meta.inReplyTo === null ? [] : [meta.inReplyTo]), ...[...meta.references].reverse()];
    candidates.push({
      uid: item.uid,
      mail: item.mail,
      meta,
      idIndex: emailMessageIdIndex(kernel.keys.blindIndexKey, botId, meta.messageId),
      threadIndexes: threadIds.map((id) => emailMessageIdIndex(kernel.keys.blindIndexKey, botId, id)),
      threadKey: threadKey(kernel, botId, meta),
      attachments: await selectAttachments(item.mail, { maxSize: kernel.config.maxUploadSize, allowedTypes: kernel.config.uploadTypes }),
    });
  }
  const staged: StagedAttachment[] = [];
  try {
    await withTenant(kernel.db, tenantId, async (trx) => {
      const quarantined = items.filter((item) => item.kind === 'quarantine');
      if (quarantined.length > 0) {
        await trx('email_quarantine')
          .insert(quarantined.map((item) => ({ id: randomUUID(), tenant_id: tenantId, bot_id: botId, uid_validity: uidValidity, uid: item.uid, reason: item.reason, attempts: item.attempts, size: item.size })))
          .onConflict(['bot_id', 'uid_validity', 'uid'])
          .ignore();
      }
      const lookups = await lookUp(trx, scope, candidates);
      // The batch's own mails join the lookups as they are stored: a mail may answer one stored just before it.
      const fresh: Candidate[] = [];
      for (const candidate of candidates) {
        const existing = lookups.messages.get(candidate.idIndex);
        if (existing?.inBatch === true) {
          outcomes.set(candidate.uid, { kind: 'skipped', uid: candidate.uid, reason: 'repeated' });
          continue;
        }
        if (existing !== undefined) {
          outcomes.set(
            candidate.uid,
            existing.role === 'user'
              ? { kind: 'duplicate', uid: candidate.uid, messageId: existing.id, conversationId: existing.conversationId, answered: lookups.answered.has(existing.id) }
              : { kind: 'skipped', uid: candidate.uid, reason: 'own_reply' },
          );
          continue;
        }
        lookups.messages.set(candidate.idIndex, { id: randomUUID(), conversationId: '', role: 'user', inBatch: true });
        fresh.push(candidate);
      }
      const limits = await withinReplyLimits(kernel, { tenantId, botId, limit: channel.maxRepliesPerSenderPerHour }, fresh.map((candidate) => ({ sender: candidate.meta.from.address, messageIndex: candidate.idIndex })));
      const newConversations: Array<Record<string, unknown>> = [];
      const touched = new Set<string>();
      const stored: Array<{ candidate: Candidate; id: string; conversationId: string }> = [];
      fresh.forEach((candidate, index) => {
        const entry = lookups.messages.get(candidate.idIndex);
        if (limits[index] !== true || entry === undefined) {
          lookups.messages.delete(candidate.idIndex);
          outcomes.set(candidate.uid, { kind: 'skipped', uid: candidate.uid, reason: 'rate_limited' });
          return;
        }
        const answeredHere = candidate.threadIndexes.map((threadIndex) => lookups.messages.get(threadIndex)?.conversationId).find((id) => id !== undefined && id !== '');
        let conversationId = answeredHere ?? lookups.threads.get(candidate.threadKey);
        if (conversationId === undefined) {
          conversationId = randomUUID();
          newConversations.push({
            id: conversationId,
            tenant_id: tenantId,
            bot_id: botId,
            channel: 'email',
            email_thread_key: candidate.threadKey,
            subject_ciphertext: sealString(kernel.keys.columnRing, candidate.meta.subject, subjectAad(conversationId)),
          });
        } else if (!newConversations.some((row) => row.id === conversationId)) {
          touched.add(conversationId);
        }
        lookups.threads.set(candidate.threadKey, conversationId);
        entry.conversationId = conversationId;
        stored.push({ candidate, id: entry.id, conversationId });
      });
      if (newConversations.length > 0) await trx('conversations').insert(newConversations);
      if (touched.size > 0) await trx('conversations').whereIn('id', [...touched]).update({ updated_at: trx.fn.now() });
      for (const { candidate, id, conversationId } of stored) {
        await insertMessage(trx, kernel.keys.columnRing, { id, tenantId, conversationId, role: 'user', text: inputText(candidate.mail) });
      }
      if (stored.length > 0) {
        const values = stored.map(({ candidate, id }) => [id, candidate.idIndex, sealString(kernel.keys.columnRing, JSON.stringify(candidate.meta), metaAad(id))]);
        await trx.raw(
          `UPDATE messages SET email_message_id_index = v.idx, email_meta_ciphertext = v.meta FROM (VALUES ${values.map(() => '(?::uuid, ?, ?)').join(', ')}) AS v(id, idx, meta) WHERE messages.id = v.id`,
          values.flat(),
        );
      }
      for (const { candidate, id, conversationId } of stored) {
        const first = staged.length;
        const { attachments } = candidate;
        if (attachments.accepted.length > 0) {
          await stageAttachments(scope.staging, kernel.keys.payloadRing, tenantId, attachments.accepted, staged);
          await recordAttachments(trx, kernel.keys.columnRing, tenantId, id, staged.slice(first));
        }
        const fileIds = staged.slice(first).map((file) => file.fileId);
        if (fileIds.length > 0 || skippedCount(attachments) > 0) {
          // Counts only: nothing of an attachment's name or content is logged.
          log.info('inbound mail attachments', { botId, stored: fileIds.length, skipped: { ...attachments.skipped } });
        }
        outcomes.set(candidate.uid, { kind: 'stored', uid: candidate.uid, messageId: id, conversationId, fileIds });
      }
      await trx('email_mailboxes')
        .insert({ bot_id: botId, tenant_id: tenantId, uid_validity: uidValidity, last_uid: last.uid })
        .onConflict('bot_id')
        .merge({ uid_validity: uidValidity, last_uid: last.uid, updated_at: trx.fn.now() });
    });
  } catch (error) {
    await Promise.allSettled(staged.map((file) => scope.staging.remove(tenantId, file.fileId)));
    throw error;
  }
  return items.map((item) => outcomes.get(item.uid) ?? { kind: 'skipped', uid: item.uid, reason: 'no_sender' });
}
