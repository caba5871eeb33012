/** The e-mail protocols (IMAP, SMTP, MIME parsing) behind one door: nothing outside adapters/mail imports imapflow, nodemailer or mailparser. */
export { classifyConnectionError, EmailConnectionError, type ConnectionFailure } from './errors.js';
export { ImapMailbox, ImapSessions, imapDestination, verifyImap, type FetchedMail, type ImapTimings, type MailboxPosition, type MailEntry } from './imap.js';
export { parseMail } from './parse.js';
export { composeReply, permanentlyRefused, POOL_LIMITS, sendComposed, SmtpPools, smtpDestination, verifySmtp, type ComposedReply, type OutgoingReply } from './smtp.js';
