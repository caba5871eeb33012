import { z } from 'zod';
import { blindIndex, normaliseEmail, openString, sealString, type KeyRing } from '../crypto/index.js';

/** Printable ASCII without spaces or control characters: nothing that could end a header line or an IMAP atom. */
const hostSchema = z.string().trim().min(1).max(253).regex(/^[A-Za-z0-9.\-:[\]]+$/, 'a host name or IP address');
const secretSchema = z.string().min(1).max(1000).refine((value) => !/[\r\n\0]/.test(value), 'no line breaks');
const endpointSchema = z.strictObject({
  host: hostSchema,
  port: z.number().int().min(1).max(65535),
  secure: z.boolean(),
  user: secretSchema,
  pass: secretSchema,
});

/** CONTRACT §5: a bot's e-mail channel. Stored sealed in bots.email_channel_ciphertext, never returned. */
export const emailChannelSchema = z.strictObject({
  imap: endpointSchema,
  smtp: endpointSchema,
  address: z.email().max(254),
  /** Replies one correspondent may get per hour from this bot (abuse and loop safety). */
  maxRepliesPerSenderPerHour: z.number().int().min(1).max(10_000).default(10),
});
export type EmailChannel = z.infer<typeof emailChannelSchema>;
export type EmailEndpoint = EmailChannel['imap'];

/** The sealed channel is bound to its bot: copied onto another bot it no longer decrypts. */
const channelAad = (botId: string): string => `bots.email_channel:${botId}`;

export function sealEmailChannel(ring: KeyRing, botId: string, channel: EmailChannel): string {
  return sealString(ring, JSON.stringify(channel), channelAad(botId));
}

export function openEmailChannel(ring: KeyRing, botId: string, sealed: string): EmailChannel {
  return emailChannelSchema.parse(JSON.parse(openString(ring, sealed, channelAad(botId))));
}

/** bots.email_address_index: equality lookups of a bot by its address without storing the address. */
export function emailAddressIndex(blindIndexKey: Buffer, address: string): string {
  return blindIndex(blindIndexKey, 'bots.email_address', normaliseEmail(address));
}

/**
 * messages.email_message_id_index: one bot's view of a Message-ID (the same mail sent to two bots of a tenant is
 * two messages). Message-IDs are compared without angle brackets and case-insensitively on the domain part.
 */
export function emailMessageIdIndex(blindIndexKey: Buffer, botId: string, messageId: string): string {
  return blindIndex(blindIndexKey, 'messages.email_message_id', `${botId}\0${normaliseMessageId(messageId)}`);
}

export function normaliseMessageId(messageId: string): string {
  const bare = messageId.trim().replace(/^<+|>+$/g, '');
  const at = bare.lastIndexOf('@');
  return at < 0 ? bare : `${bare.slice(0, at)}@${bare.slice(at + 1).toLowerCase()}`;
}
