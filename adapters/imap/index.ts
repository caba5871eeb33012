import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type { EmailEndpoint } from '../../shared/email/channel.js';
import { classifyConnectionError, EmailConnectionError } from './errors.js';

export { classifyConnectionError, EmailConnectionError, type ConnectionFailure } from './errors.js';

export function imapClient(endpoint: EmailEndpoint, options: { timeoutMs?: number; autoIdleDelayMs?: number } = {}): ImapFlow {
  const timeout = options.timeoutMs ?? 30_000;
  const settings: ImapFlowOptions = {
    host: endpoint.host,
    port: endpoint.port,
    secure: endpoint.secure,
    auth: { user: endpoint.user, pass: endpoint.pass },
    logger: false,
    connectionTimeout: timeout,
    greetingTimeout: timeout,
    socketTimeout: Math.max(timeout * 10, 5 * 60_000),
    tls: { rejectUnauthorized: true },
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
 * Connection test: connect, log in, read INBOX's UIDVALIDITY and UIDNEXT, log out. Throws EmailConnectionError
 * with a reason code. The position lets the channel answer mail that arrives from now on, not the backlog.
 */
export async function verifyImap(endpoint: EmailEndpoint, timeoutMs = 5000): Promise<MailboxPosition> {
  const client = imapClient(endpoint, { timeoutMs });
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
