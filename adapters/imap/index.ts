import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type { EmailEndpoint } from '../../shared/email/channel.js';
import { EgressResolveError, type CheckedDestination, type EgressPolicy } from '../../shared/net/egress.js';
import { classifyConnectionError, EmailConnectionError } from './errors.js';

export { classifyConnectionError, EmailConnectionError, type ConnectionFailure } from './errors.js';

/** The IMAP server of an endpoint as the egress policy allows it (throws EgressDeniedError or EgressResolveError). */
export function imapDestination(egress: EgressPolicy, endpoint: EmailEndpoint, field = 'email.imap'): Promise<CheckedDestination> {
  return egress.check({ host: endpoint.host, port: endpoint.port, protocol: 'imap', field });
}

/**
 * A client for the endpoint's mailbox that connects to the checked address (no second name lookup) and verifies
 * the certificate against the host name the endpoint names.
 */
export function imapClient(endpoint: EmailEndpoint, destination: CheckedDestination, options: { timeoutMs?: number; autoIdleDelayMs?: number } = {}): ImapFlow {
  const timeout = options.timeoutMs ?? 30_000;
  const settings: ImapFlowOptions = {
    host: destination.address,
    port: destination.port,
    ...(destination.servername === undefined ? {} : { servername: destination.servername }),
    secure: endpoint.secure,
    auth: { user: endpoint.user, pass: endpoint.pass },
    logger: false,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: Math.max(timeout * 10, 5 * 60_000),
    tls: { rejectUnauthorized: true, ...(destination.servername === undefined ? {} : { servername: destination.servername }) },
    // imapflow starts IDLE only this long after its last command (15 s by default).
    ...(options.autoIdleDelayMs === undefined ? {} : { autoIdleDelay: options.autoIdleDelayMs }),
    emitLogs: false,
    disableAutoIdle: false,
  };
  return new ImapFlow(settings);
}

export interface MailboxPosition {
  uidValidity: number;
  /** The highest UID present when the position was taken: mail after it is new. */
  lastUid: number;
}

/**
 * Connection test: the egress policy first (a refused destination throws EgressDeniedError before any socket
 * exists), then connect, log in, read INBOX's UIDVALIDITY and UIDNEXT, log out. Throws EmailConnectionError with a
 * reason code. The position lets the channel answer mail that arrives from now on, not the backlog.
 */
export async function verifyImap(endpoint: EmailEndpoint, egress: EgressPolicy, timeoutMs = 5000): Promise<MailboxPosition> {
  let destination: CheckedDestination;
  try {
    destination = await imapDestination(egress, endpoint);
  } catch (error) {
    if (error instanceof EgressResolveError) throw new EmailConnectionError('imap', 'unreachable', error);
    throw error;
  }
  const client = imapClient(endpoint, destination, { timeoutMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (error) {
    throw new EmailConnectionError('imap', classifyConnectionError(error), error);
  }
  try {
    const status = await client.status('INBOX', { uidNext: true, uidValidity: true });
    if (status === false) throw new Error('INBOX status unavailable');
    return { uidValidity: Number(status.uidValidity ?? 0n), lastUid: Math.max(0, (status.uidNext ?? 1) - 1) };
  } catch (error) {
    throw new EmailConnectionError('imap', classifyConnectionError(error), error);
  } finally {
    await client.logout().catch(() => undefined);
  }
}
