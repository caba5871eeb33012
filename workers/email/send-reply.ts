import { UnrecoverableError } from 'bullmq';
import { composeReply, permanentlyRefused, sendComposed, type ComposedReply, type ImapMailbox, type ImapSessions, type SmtpPools } from '../../adapters/mail/index.js';
import { MESSAGE_COLUMNS, openMessageRow, type MessageRow } from '../../shared/chat/index.js';
import { openString } from '../../shared/crypto/index.js';
import { inTenant } from '../../shared/db/index.js';
import { emailMessageIdIndex, openEmailChannel, type EmailChannel } from '../../shared/email/channel.js';
import { inboundMetaSchema, isSafeAddress, replySubject, type InboundMeta } from '../../shared/email/message.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';
import { EgressDeniedError } from '../../shared/net/egress.js';
import type { JobData } from '../../shared/queue/index.js';
import { auditEgressRefusal } from './channel.js';
import { crashPoint } from './crash-points.js';
import { metaAad } from './store-inbound.js';

interface OutboundContext {
  channel: EmailChannel;
  botId: string;
  meta: InboundMeta;
  text: string;
  /** The reply's Message-ID without angle brackets: `<bot message id>@<domain of the bot's address>`. */
  outgoingId: string;
}

/** The reply's Message-ID, derived from the bot message id: a retried send carries the same one. */
export function replyMessageId(botMessageId: string, botAddress: string): string {
  return `${botMessageId}@${botAddress.slice(botAddress.lastIndexOf('@') + 1).toLowerCase()}`;
}

interface OutboundRow extends MessageRow {
  inbound_meta: string | null;
  inbound_index: string | null;
  bot_id: string;
  bot_channel: string | null;
  bot_deleted_at: Date | null;
}

/**
 * Reads what the reply needs in one statement (the reply, the sealed headers of the mail it answers, the bot's
 * channel), then records the reply's Message-ID index on the bot message, so that a reply to the reply finds this
 * conversation by its In-Reply-To.
 */
async function loadOutbound(kernel: Kernel, data: JobData<'email-outbound'>): Promise<OutboundContext> {
  const [row] = await inTenant<OutboundRow>(
    kernel.db,
    data.tenantId,
    kernel
      .db('messages as r')
      .join('messages as i', 'i.id', 'r.reply_to')
      .join('conversations as c', 'c.id', 'r.conversation_id')
      .join('bots as b', 'b.id', 'c.bot_id')
      .where('r.id', data.botMessageId)
      .select([...MESSAGE_COLUMNS.map((column) => `r.${column}`), 'i.email_meta_ciphertext as inbound_meta', 'i.email_message_id_index as inbound_index', 'b.id as bot_id', 'b.email_channel_ciphertext as bot_channel', 'b.deleted_at as bot_deleted_at']),
  );
  if (row === undefined || row.reply_to !== data.replyToMessageId || row.conversation_id !== data.conversationId) throw new UnrecoverableError('the reply no longer exists');
  if (row.inbound_meta === null || row.inbound_index === null) throw new UnrecoverableError('the answered message did not come by e-mail');
  if (row.bot_deleted_at !== null || row.bot_channel === null) throw new UnrecoverableError('the bot has no e-mail channel any more');
  const reply = openMessageRow(kernel.keys.columnRing, row);
  const channel = openEmailChannel(kernel.keys.columnRing, row.bot_id, row.bot_channel);
  const meta = inboundMetaSchema.parse(JSON.parse(openString(kernel.keys.columnRing, row.inbound_meta, metaAad(data.replyToMessageId))));
  const outgoingId = replyMessageId(data.botMessageId, channel.address);
  await inTenant(kernel.db, data.tenantId, kernel.db('messages').where({ id: data.botMessageId }).update({ email_message_id_index: emailMessageIdIndex(kernel.keys.blindIndexKey, row.bot_id, outgoingId) }));
  return { channel, botId: row.bot_id, meta, text: reply.text, outgoingId };
}

export interface OutboundConnections {
  smtp: SmtpPools;
  imap: ImapSessions;
}

/** A connection the egress policy refuses: audited, and the job fails for good (the settings would be refused again). */
async function refusedByPolicy(kernel: Kernel, tenantId: string, botId: string, error: unknown): Promise<never> {
  if (!(error instanceof EgressDeniedError)) throw error;
  await auditEgressRefusal(kernel, tenantId, botId, error);
  throw new UnrecoverableError(`the egress policy refuses the bot's ${error.protocol.toUpperCase()} server (${error.reason})`);
}

/** APPEND to Sent; once more on a fresh connection when the kept one dropped. */
async function keepInSent(connections: OutboundConnections, context: OutboundContext, mailbox: ImapMailbox, message: ComposedReply): Promise<void> {
  try {
    await mailbox.appendSeen(await mailbox.sentFolder(), message.raw);
  } catch (error) {
    if (mailbox.usable) throw error;
    const fresh = await connections.imap.get(context.botId, context.channel.imap);
    await fresh.appendSeen(await fresh.sentFolder(), message.raw);
  }
}

/**
 * Sends the bot's reply to one inbound mail so that the recipient sees it once. The reply's Message-ID is derived
 * from the bot message id. After the SMTP server accepted it, the same bytes are appended to the mailbox's Sent
 * folder (flagged \Seen). A retried job (it failed before, or its worker died holding it: BullMQ counts every
 * start) first searches Sent for the Message-ID and sends only when it is absent. What is left in doubt is a crash
 * between the server's acceptance and the APPEND: the reply is then sent again with the same Message-ID (which mail
 * clients and receiving systems collapse), never dropped. The IMAP connection is made before anything is sent.
 */
export async function sendEmailReply(kernel: Kernel, connections: OutboundConnections, data: JobData<'email-outbound'>, retried: boolean): Promise<'sent' | 'already'> {
  const context = await loadOutbound(kernel, data);
  const { channel, meta } = context;
  if (!isSafeAddress(meta.from.address)) throw new UnrecoverableError('unsafe recipient address');
  const messageId = `<${context.outgoingId}>`;
  const mailbox = await connections.imap.get(context.botId, channel.imap).catch((error: unknown) => refusedByPolicy(kernel, data.tenantId, context.botId, error));
  const transport = await connections.smtp.get(context.botId, channel.smtp).catch((error: unknown) => refusedByPolicy(kernel, data.tenantId, context.botId, error));
  if (retried && (await mailbox.holdsMessageId(await mailbox.sentFolder(), messageId))) return 'already';
  const message = await composeReply({
    from: { name: '', address: channel.address },
    to: { name: meta.from.name, address: meta.from.address },
    subject: replySubject(meta.subject),
    text: context.text,
    messageId,
    inReplyTo: `<${meta.messageId}>`,
    references: [...meta.references, meta.messageId].slice(-20).map((id) => `<${id}>`),
  });
  try {
    await sendComposed(transport, message);
  } catch (error) {
    if (!permanentlyRefused(error)) throw error;
    log.warn('the SMTP server refused the reply for good', { botId: context.botId, responseCode: (error as { responseCode?: unknown }).responseCode });
    throw new UnrecoverableError('the SMTP server refused the reply');
  }
  await crashPoint(kernel, 'outbound-after-accept');
  await keepInSent(connections, context, mailbox, message);
  await crashPoint(kernel, 'outbound-after-append');
  return 'sent';
}
