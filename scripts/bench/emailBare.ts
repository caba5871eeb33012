import { performance } from 'node:perf_hooks';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import { IMAP_PORT, type MailUser } from '../../test/helpers/mail.js';

/**
 * The bare engines' figure for the e-mail benchmark: the protocol work alone for the mails in a mailbox's INBOX,
 * with no database, queue or bot: one IMAP FETCH of all of them, mailparser on each, and for each a reply composed
 * by nodemailer, sent through a pooled SMTP transport (5 connections, as the worker's) and appended to Sent.
 * Resolves with the mails per second of that pipeline.
 */
export async function bareMailPipeline(bot: MailUser, smtpPort: number, concurrency = 10): Promise<{ mails: number; seconds: number }> {
  const imap = new ImapFlow({ host: '127.0.0.1', port: IMAP_PORT, secure: false, auth: { user: bot.address, pass: bot.password }, logger: false });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: smtpPort, secure: false, ignoreTLS: true, pool: true, maxConnections: 5, logger: false });
  await imap.connect();
  try {
    const started = performance.now();
    const sources: Buffer[] = [];
    const lock = await imap.getMailboxLock('INBOX');
    try {
      for await (const message of imap.fetch('1:*', { uid: true, source: true })) if (message.source !== undefined) sources.push(message.source);
    } finally {
      lock.release();
    }
    const sent = 'BareSent';
    await imap.mailboxCreate(sent).catch(() => undefined);
    let next = 0;
    const work = async (): Promise<void> => {
      for (;;) {
        const source = sources[next];
        next += 1;
        if (source === undefined) return;
        const mail = await simpleParser(source, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true });
        const from = mail.from?.value[0]?.address ?? 'nobody@sender.example';
        const raw = await new MailComposer({ from: bot.address, to: from, subject: `Re: ${mail.subject ?? ''}`, text: 'We open at 9.', inReplyTo: mail.messageId, headers: { 'Auto-Submitted': 'auto-replied' } }).compile().build();
        await transport.sendMail({ envelope: { from: bot.address, to: [from] }, raw });
        await imap.append(sent, raw, ['\\Seen']);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, () => work()));
    return { mails: sources.length, seconds: (performance.now() - started) / 1000 };
  } finally {
    transport.close();
    await imap.logout().catch(() => undefined);
  }
}
