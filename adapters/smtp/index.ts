import { createHash } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { EmailEndpoint } from '../../shared/email/channel.js';
import { classifyConnectionError, EmailConnectionError } from '../imap/errors.js';

export interface TransportOptions {
  /** Milliseconds for connecting, greeting and each command (the connection test uses short ones). */
  timeoutMs?: number;
}

export function smtpTransport(endpoint: EmailEndpoint, options: TransportOptions = {}): Transporter<SMTPTransport.SentMessageInfo> {
  const timeout = options.timeoutMs ?? 30_000;
  const settings: SMTPTransport.Options = {
    host: endpoint.host,
    port: endpoint.port,
    secure: endpoint.secure,
    auth: { user: endpoint.user, pass: endpoint.pass },
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: timeout * 2,
    // Certificates are always verified; a plain (non-TLS) server is used as-is only when `secure` is false.
    tls: { rejectUnauthorized: true },
    logger: false,
    debug: false,
  };
  return nodemailer.createTransport(settings);
}

/** Connection test: connect, (STARTTLS), log in, quit. Throws EmailConnectionError with a reason code. */
export async function verifySmtp(endpoint: EmailEndpoint, timeoutMs = 5000): Promise<void> {
  const transport = smtpTransport(endpoint, { timeoutMs });
  try {
    await transport.verify();
  } catch (error) {
    throw new EmailConnectionError('smtp', classifyConnectionError(error), error);
  } finally {
    transport.close();
  }
}

export interface OutgoingReply {
  from: { name: string; address: string };
  to: { name: string; address: string };
  subject: string;
  text: string;
  messageId: string;
  inReplyTo: string;
  references: string[];
}

/**
 * Sends one reply. Every header is a structured nodemailer option (address objects, `messageId`, `inReplyTo`,
 * `references` array), so nodemailer encodes the values; nothing from the incoming mail is concatenated into a
 * header line. Resolves once the SMTP server accepted the message.
 */
export async function sendReply<T>(transport: Transporter<T>, reply: OutgoingReply): Promise<T> {
  return transport.sendMail({
    from: reply.from,
    to: reply.to,
    subject: reply.subject,
    text: reply.text,
    messageId: reply.messageId,
    inReplyTo: reply.inReplyTo,
    references: reply.references,
    headers: { 'Auto-Submitted': 'auto-replied' },
    envelope: { from: reply.from.address, to: [reply.to.address] },
    disableFileAccess: true,
    disableUrlAccess: true,
  });
}

/**
 * Pooled SMTP connections, one pool per bot and settings (changed settings get a new pool; the old one closes).
 * Sending a burst of replies then costs one TLS handshake and login per connection, not per mail.
 */
export class SmtpPools {
  private readonly pools = new Map<string, { fingerprint: string; transport: Transporter<SMTPPool.SentMessageInfo> }>();

  get(botId: string, endpoint: EmailEndpoint): Transporter<SMTPPool.SentMessageInfo> {
    const fingerprint = createHash('sha256').update(JSON.stringify(endpoint)).digest('hex');
    const existing = this.pools.get(botId);
    if (existing !== undefined && existing.fingerprint === fingerprint) return existing.transport;
    existing?.transport.close();
    const settings: SMTPPool.Options = {
      pool: true,
      maxConnections: 5,
      maxMessages: 500,
      host: endpoint.host,
      port: endpoint.port,
      secure: endpoint.secure,
      auth: { user: endpoint.user, pass: endpoint.pass },
      connectionTimeout: 30_000,
      greetingTimeout: 30_000,
      socketTimeout: 60_000,
      tls: { rejectUnauthorized: true },
      logger: false,
      debug: false,
    };
    const transport = nodemailer.createTransport(settings);
    this.pools.set(botId, { fingerprint, transport });
    return transport;
  }

  closeAll(): void {
    for (const { transport } of this.pools.values()) transport.close();
    this.pools.clear();
  }
}
