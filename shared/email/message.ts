import { createHash } from 'node:crypto';
import { z } from 'zod';
import { normaliseEmail } from '../crypto/index.js';
import { normaliseMessageId } from './channel.js';
import type { InboundMail } from './mail.js';

/** The headers of an inbound mail that its reply and its threading need (stored sealed next to the message). */
export const inboundMetaSchema = z.object({
  messageId: z.string(),
  inReplyTo: z.string().nullable(),
  references: z.array(z.string()),
  from: z.object({ name: z.string(), address: z.string() }),
  subject: z.string(),
});
export type InboundMeta = z.infer<typeof inboundMetaSchema>;

/** Why a mail gets no answer (RFC 3834 and list headers); `null`: answer it. */
export type SkipReason = 'own_address' | 'auto_submitted' | 'precedence' | 'list' | 'mailer_daemon' | 'no_sender' | 'rate_limited';

const SYSTEM_SENDERS = /^(mailer-daemon|postmaster|no-?reply|listserv|majordomo|owner-.*|.*-request|bounce[s]?)$/i;
const MAX_TEXT = 20_000;
const MAX_REFERENCES = 20;

/** Control characters (CR, LF, NUL, …) replaced by spaces: a value that can never end or start a header line. */
export function singleLine(value: string, max = 500): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what must go
  return value.replace(/[\u0000-\u001f\u007f\u2028\u2029]+/g, ' ').trim().slice(0, max);
}

/** A plausible addr-spec: no spaces, quotes, brackets or control characters. */
export function isSafeAddress(address: string): boolean {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  return address.length <= 254 && /^[^\s<>"(),;:\\[\]\u0000-\u001f\u007f@]+@[A-Za-z0-9.-]+$/.test(address);
}

export function extractMeta(mail: InboundMail, source: Buffer): InboundMeta | undefined {
  const from = mail.from[0];
  if (from === undefined || !isSafeAddress(from.address)) return undefined;
  const references = mail.references
    .map(normaliseMessageId)
    .filter((id) => id !== '' && !/[\s<>]/.test(id))
    .slice(-MAX_REFERENCES);
  // A mail without Message-ID gets a stable one from its content, so a second fetch dedupes all the same.
  const messageId = mail.messageId === undefined || mail.messageId.trim() === '' ? `sha256-${createHash('sha256').update(source).digest('hex')}@missing.invalid` : normaliseMessageId(mail.messageId);
  const inReplyTo = mail.inReplyTo === undefined ? null : normaliseMessageId(mail.inReplyTo.split(/\s+/)[0] ?? '');
  return {
    messageId,
    inReplyTo: inReplyTo === '' ? null : inReplyTo,
    references,
    from: { name: singleLine(from.name, 200), address: from.address },
    subject: singleLine(mail.subject ?? '', 500),
  };
}

/** RFC 3834 §2 and RFC 2919: mail that must not get an automatic answer. */
export function skipReason(mail: InboundMail, meta: InboundMeta | undefined, ownAddress: string): SkipReason | null {
  if (meta === undefined) return 'no_sender';
  if (normaliseEmail(meta.from.address) === normaliseEmail(ownAddress)) return 'own_address';
  const autoSubmitted = mail.headers.get('auto-submitted');
  if (autoSubmitted !== undefined && autoSubmitted.trim().toLowerCase().split(/[;\s]/)[0] !== 'no') return 'auto_submitted';
  const precedence = mail.headers.get('precedence');
  if (precedence !== undefined && /^(bulk|list|junk)$/i.test(precedence.trim())) return 'precedence';
  if (['list-id', 'list-unsubscribe', 'list-post'].some((name) => mail.headers.has(name))) return 'list';
  if (/\b(all|oof|autoreply)\b/i.test(mail.headers.get('x-auto-response-suppress') ?? '')) return 'auto_submitted';
  const local = meta.from.address.slice(0, meta.from.address.lastIndexOf('@'));
  if (SYSTEM_SENDERS.test(local)) return 'mailer_daemon';
  return null;
}

/**
 * The bot's input: the plain-text part (mailparser derives it from HTML when there is none), without quoted
 * history ("> " lines, "On … wrote:" and "-----Original Message-----" blocks) and without the signature ("-- ").
 */
export function inputText(mail: InboundMail): string {
  const text = mail.text ?? '';
  const kept: string[] = [];
  for (const line of text.replace(/\r\n?/g, '\n').split('\n')) {
    if (line === '-- ' || line === '--') break;
    if (/^-{2,}\s*Original Message\s*-{2,}/i.test(line) || /^On .{1,200} wrote:\s*$/.test(line) || /^_{10,}$/.test(line)) break;
    if (/^\s*>/.test(line)) continue;
    kept.push(line);
  }
  const body = kept.join('\n').trim();
  return (body === '' ? (mail.subject ?? '').trim() : body).slice(0, MAX_TEXT);
}

/** "Re: Fwd: AW: Hello" → "hello": the subject a thread keeps. */
export function normaliseSubject(subject: string): string {
  let current = subject.trim();
  for (;;) {
    const next = current.replace(/^\s*(re|fw|fwd|aw|sv|vs|wg)(\[\d+\])?\s*:\s*/i, '');
    if (next === current) break;
    current = next;
  }
  return current.replace(/\s+/g, ' ').toLowerCase();
}

/** The subject of the reply: the original with one "Re: ". */
export function replySubject(subject: string): string {
  const clean = singleLine(subject, 500);
  if (clean === '') return 'Re: your message';
  return /^re\s*:/i.test(clean) ? clean : `Re: ${clean}`;
}
