import { UnrecoverableError } from 'bullmq';
import { composeReply, permanentlyRefused, sendComposed, type ComposedReply, type ImapMailbox, type ImapSessions, type SmtpPools } from '../../adapters/mail/index.js';
import { findMessage } from '../../shared/chat/index.js';
import { openString } from '../../shared/crypto/index.js';
import { withTenant } from '../../shared/db/index.js';
import { emailMessageIdIndex, openEmailChannel, type EmailChannel } from '../../shared/email/channel.js';
import { isSafeAddress, replySubject, type InboundMeta } from '../../shared/email/message.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';
import { EgressDeniedError } from '../../shared/net/egress.js';
import type { JobData } from '../../shared/queue/index.js';
import { auditEgressRefusal } from './channel.js';
import { crashPoint } from './crash-points.js';
import { metaAad } from './store-inbound.js';

/** How long the "a send of this reply was started" mark lives in Redis. */
const STARTED_TTL_S = 30 * 24 * 3600;

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

/**
 * Reads what the reply needs and records the reply's Message-ID index on the bot message (a reply to the reply
 * then finds this conversation by its In-Reply-To), in one transaction.
 */
async function loadOutbound(kernel: Kernel, data: JobData<'email-outbound'>): Promise<OutboundContext> {
  return withTenant(kernel.db, data.tenantId, async (trx) => {
    const reply = await findMessage(trx, kernel.keys.columnRing, data.botMessageId);
    if (reply === undefined || reply.replyTo !== data.replyToMessageId || reply.conversationId !== data.conversationId) throw new UnrecoverableError('the reply no longer exists');
    const inbound = await trx('messages').where({ id: data.replyToMessageId }).first<{ email_meta_ciphertext: string | null; email_message_id_index: string | null } | undefined>('email_meta_ciphertext', 'email_message_id_index');
    if (inbound?.email_meta_ciphertext == null || inbound.email_message_id_index === null) throw new UnrecoverableError('the answered message did not come by e-mail');
    const bot = await trx('conversations')
      .join('bots', 'bots.id', 'conversations.bot_id')
      .where('conversations.id', data.conversationId)
      .whereNull('bots.deleted_at')
      .first<{ id: string; email_channel_ciphertext: string | null } | undefined>('bots.id', 'bots.email_channel_ciphertext');
    if (bot?.email_channel_ciphertext == null) throw new UnrecoverableError('the bot has no e-mail channel any more');
    const channel = openEmailChannel(kernel.keys.columnRing, bot.id, bot.email_channel_ciphertext);
    const meta = JSON.parse(openString(kernel.keys.columnRing, inbound.email_meta_ciphertext, metaAad(data.replyToMessageId))) as InboundMeta;
    const outgoingId = replyMessageId(data.botMessageId, channel.address);
    await trx('messages').where({ id: data.botMessageId }).update({ email_message_id_index: emailMessageIdIndex(kernel.keys.blindIndexKey, bot.id, outgoingId) });
    return { channel, botId: bot.id, meta, text: reply.text, outgoingId };
  });
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
 * folder (flagged \Seen). A retried job (a Redis mark says a send was started, or the job ran before) first searches
 * Sent for the Message-ID and sends only when it is absent. What is left in doubt is a crash between the server's
 * acceptance and the APPEND: the reply is then sent again with the same Message-ID (which mail clients and receiving
 * systems collapse), never dropped. The IMAP connection is made before anything is sent.
 */
export async function sendEmailReply(kernel: Kernel, connections: OutboundConnections, data: JobData<'email-outbound'>, retried: boolean): Promise<'sent' | 'already'> {
  const context = await loadOutbound(kernel, data);
  const { channel, meta } = context;
  if (!isSafeAddress(meta.from.address)) throw new UnrecoverableError('unsafe recipient address');
  const messageId = `<${context.outgoingId}>`;
  const mailbox = await connections.imap.get(context.botId, channel.imap).catch((error: unknown) => refusedByPolicy(kernel, data.tenantId, context.botId, error));
  const transport = await connections.smtp.get(context.botId, channel.smtp).catch((error: unknown) => refusedByPolicy(kernel, data.tenantId, context.botId, error));
  const started = (await kernel.redis.set(`${kernel.queues.prefix}:email:sending:${data.botMessageId}`, '1', 'EX', STARTED_TTL_S, 'NX')) === 'OK';
  if ((retried || !started) && (await mailbox.holdsMessageId(await mailbox.sentFolder(), messageId))) return 'already';
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
