import { createHash } from 'node:crypto';
import nodemailer, { type Transporter } from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import type { EmailEndpoint } from '../../shared/email/channel.js';
import { EgressResolveError, type CheckedDestination, type EgressPolicy } from '../../shared/net/egress.js';
import { classifyConnectionError, EmailConnectionError } from './errors.js';

/** The SMTP server of an endpoint as the egress policy allows it (throws EgressDeniedError or EgressResolveError). */
export function smtpDestination(egress: EgressPolicy, endpoint: EmailEndpoint, field = 'email.smtp'): Promise<CheckedDestination> {
  return egress.check({ host: endpoint.host, port: endpoint.port, protocol: 'smtp', field });
}

/** Connections of one bot's pool and messages per connection before it is replaced. */
export const POOL_LIMITS = { maxConnections: 10, maxMessages: 500 } as const;

/**
 * The one place SMTP transport options are built. The socket goes to the checked address; the certificate is
 * always verified, against the host name the endpoint names (also sent as SNI). A plain (non-TLS) server is used
 * as-is only when `secure` is false (STARTTLS when it offers it). `timeoutMs` bounds connecting, the greeting and,
 * doubled, each command.
 */
function transportOptions(endpoint: EmailEndpoint, destination: CheckedDestination, timeoutMs: number): SMTPTransport.Options {
  return {
    host: destination.address,
    port: destination.port,
    secure: endpoint.secure,
    auth: { user: endpoint.user, pass: endpoint.pass },
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs * 2,
    tls: destination.servername === undefined ? { rejectUnauthorized: true } : { rejectUnauthorized: true, servername: destination.servername },
    logger: false,
    debug: false,
  };
}

/**
 * Connection test: the egress policy first (a refused destination throws EgressDeniedError before any socket
 * exists), then connect, (STARTTLS), log in, quit. Throws EmailConnectionError with a reason code.
 */
export async function verifySmtp(endpoint: EmailEndpoint, egress: EgressPolicy, timeoutMs = 5000): Promise<void> {
  let destination: CheckedDestination;
  try {
    destination = await smtpDestination(egress, endpoint);
  } catch (error) {
    if (error instanceof EgressResolveError) throw new EmailConnectionError('smtp', 'unreachable', error);
    throw error;
  }
  const transport = nodemailer.createTransport(transportOptions(endpoint, destination, timeoutMs));
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
  /** With angle brackets. */
  messageId: string;
  inReplyTo: string;
  references: string[];
}

/** A composed message: the exact bytes that go out by SMTP and into the Sent folder. */
export interface ComposedReply {
  raw: Buffer;
  envelope: { from: string; to: string[] };
}

/**
 * Builds the reply's MIME message. Every header is a structured nodemailer option (address objects, `messageId`,
 * `inReplyTo`, `references` array), so nodemailer encodes the values; nothing from the incoming mail is
 * concatenated into a header line.
 */
export async function composeReply(reply: OutgoingReply): Promise<ComposedReply> {
  const node = new MailComposer({
    from: reply.from,
    to: reply.to,
    subject: reply.subject,
    text: reply.text,
    messageId: reply.messageId,
    inReplyTo: reply.inReplyTo,
    references: reply.references,
    headers: { 'Auto-Submitted': 'auto-replied' },
    disableFileAccess: true,
    disableUrlAccess: true,
  }).compile();
  return { raw: await node.build(), envelope: { from: reply.from.address, to: [reply.to.address] } };
}

/** Sends a composed message; resolves once the SMTP server accepted it (its final reply to DATA). */
export async function sendComposed(transport: Transporter<SMTPPool.SentMessageInfo>, message: ComposedReply): Promise<void> {
  await transport.sendMail({ envelope: message.envelope, raw: message.raw, disableFileAccess: true, disableUrlAccess: true });
}

/** Whether the SMTP server refused the message for good (a 5xx reply): sending it again would be refused again. */
export function permanentlyRefused(error: unknown): boolean {
  const { responseCode } = error as { responseCode?: unknown };
  return typeof responseCode === 'number' && responseCode >= 500 && responseCode < 600;
}

/** How long a pool keeps the address its destination was checked at before the policy is asked again. */
const POOL_RECHECK_MS = 5 * 60_000;

/**
 * Pooled SMTP connections, one pool per bot and settings (changed settings get a new pool; the old one closes).
 * Sending a burst of replies then costs one TLS handshake and login per connection, not per mail. A pool connects
 * to the address the egress policy checked when it was made; it is made again (checked again) every few minutes.
 */
export class SmtpPools {
  private readonly pools = new Map<string, { fingerprint: string; address: string; checkedAt: number; transport: Transporter<SMTPPool.SentMessageInfo> }>();

  constructor(private readonly egress: EgressPolicy) {}

  /** The bot's pool; throws EgressDeniedError (or EgressResolveError) when the policy refuses its server. */
  async get(botId: string, endpoint: EmailEndpoint): Promise<Transporter<SMTPPool.SentMessageInfo>> {
    const fingerprint = createHash('sha256').update(JSON.stringify(endpoint)).digest('hex');
    const existing = this.pools.get(botId);
    if (existing !== undefined && existing.fingerprint === fingerprint && Date.now() - existing.checkedAt < POOL_RECHECK_MS) return existing.transport;
    let destination: CheckedDestination;
    try {
      destination = await smtpDestination(this.egress, endpoint);
    } catch (error) {
      existing?.transport.close();
      this.pools.delete(botId);
      throw error;
    }
    if (existing !== undefined && existing.fingerprint === fingerprint && existing.address === destination.address) {
      existing.checkedAt = Date.now();
      return existing.transport;
    }
    existing?.transport.close();
    const settings: SMTPPool.Options = { ...transportOptions(endpoint, destination, 30_000), pool: true, ...POOL_LIMITS };
    const transport = nodemailer.createTransport(settings);
    this.pools.set(botId, { fingerprint, address: destination.address, checkedAt: Date.now(), transport });
    return transport;
  }

  closeAll(): void {
    for (const { transport } of this.pools.values()) transport.close();
    this.pools.clear();
  }
}
