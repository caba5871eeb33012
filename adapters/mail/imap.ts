import { createHash } from 'node:crypto';
import { ImapFlow, type ImapFlowOptions } from 'imapflow';
import type { EmailEndpoint } from '../../shared/email/channel.js';
import { EgressResolveError, type CheckedDestination, type EgressPolicy } from '../../shared/net/egress.js';
import { classifyConnectionError, EmailConnectionError } from './errors.js';

/** The IMAP server of an endpoint as the egress policy allows it (throws EgressDeniedError or EgressResolveError). */
export function imapDestination(egress: EgressPolicy, endpoint: EmailEndpoint, field = 'email.imap'): Promise<CheckedDestination> {
  return egress.check({ host: endpoint.host, port: endpoint.port, protocol: 'imap', field });
}

export interface ImapTimings {
  /** Connecting and the greeting (the connection test uses a short one). */
  timeoutMs?: number;
  /** imapflow starts IDLE only this long after its last command (15 s by default). */
  autoIdleDelayMs?: number;
}

/**
 * A client for the endpoint's mailbox that connects to the checked address (no second name lookup) and verifies
 * the certificate against the host name the endpoint names.
 */
function imapClient(endpoint: EmailEndpoint, destination: CheckedDestination, timings: ImapTimings = {}): ImapFlow {
  const timeout = timings.timeoutMs ?? 30_000;
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
    ...(timings.autoIdleDelayMs === undefined ? {} : { autoIdleDelay: timings.autoIdleDelayMs }),
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

/** A new mail's place in the mailbox, before its content is fetched. */
export interface MailEntry {
  uid: number;
  /** RFC822.SIZE in bytes. */
  size: number;
}

export interface FetchedMail {
  uid: number;
  source: Buffer;
}

/** What the e-mail worker does with one logged-in IMAP connection; nothing of imapflow shows through. */
export class ImapMailbox {
  readonly closed: Promise<void>;
  private sentPath: string | undefined;

  private constructor(private readonly client: ImapFlow) {
    this.closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    // Failures surface through the commands' promises and the `close` event.
    client.on('error', () => undefined);
  }

  /** Connects and logs in; throws on a refused login or an unreachable server. */
  static async connect(endpoint: EmailEndpoint, destination: CheckedDestination, timings: ImapTimings = {}): Promise<ImapMailbox> {
    const mailbox = new ImapMailbox(imapClient(endpoint, destination, timings));
    await mailbox.client.connect();
    return mailbox;
  }

  get usable(): boolean {
    return this.client.usable;
  }

  /** Selects INBOX (read-write: IDLE reports news there); resolves with its UIDVALIDITY. */
  async openInbox(): Promise<number> {
    const opened = await this.client.mailboxOpen('INBOX');
    return Number(opened.uidValidity);
  }

  /** UIDVALIDITY of the selected mailbox, or undefined when none is selected. */
  get uidValidity(): number | undefined {
    return this.client.mailbox === false ? undefined : Number(this.client.mailbox.uidValidity);
  }

  /** Calls `listener` whenever the server reports more messages in the selected mailbox (IDLE or a command's reply). */
  onNewMail(listener: () => void): void {
    this.client.on('exists', listener);
  }

  /** The mails above `afterUid` in the selected mailbox with their sizes, in UID order (one FETCH, no content). */
  async listAfter(afterUid: number): Promise<MailEntry[]> {
    const found: MailEntry[] = [];
    // `n:*` also answers the highest message when none is above n: it is filtered out.
    for await (const message of this.client.fetch(`${afterUid + 1}:*`, { uid: true, size: true }, { uid: true })) {
      if (message.uid > afterUid) found.push({ uid: message.uid, size: message.size ?? 0 });
    }
    return found.sort((a, b) => a.uid - b.uid);
  }

  /** The full sources of the mails with UIDs from `first` to `last` (one FETCH of the range), in UID order. */
  async fetchRange(first: number, last: number): Promise<FetchedMail[]> {
    const found: FetchedMail[] = [];
    for await (const message of this.client.fetch(`${first}:${last}`, { uid: true, source: true }, { uid: true })) {
      if (message.uid >= first && message.uid <= last && message.source !== undefined) found.push({ uid: message.uid, source: message.source });
    }
    return found.sort((a, b) => a.uid - b.uid);
  }

  /**
   * The folder sent mail is kept in: the one marked `\Sent` (RFC 6154 special use, or a well-known name such as
   * "Sent Items"), else one named `Sent`, created when missing. Looked up once per connection.
   */
  async sentFolder(): Promise<string> {
    if (this.sentPath !== undefined) return this.sentPath;
    const folders = await this.client.list();
    const found = folders.find((folder) => folder.specialUse === '\\Sent') ?? folders.find((folder) => folder.path.toLowerCase() === 'sent');
    if (found !== undefined) {
      this.sentPath = found.path;
      return found.path;
    }
    const created = await this.client.mailboxCreate('Sent');
    this.sentPath = created.path;
    return created.path;
  }

  /** Whether a message with this Message-ID (with angle brackets) is in `folder` (`SEARCH HEADER Message-ID`). */
  async holdsMessageId(folder: string, messageId: string): Promise<boolean> {
    const lock = await this.client.getMailboxLock(folder, { readOnly: true });
    try {
      const uids = await this.client.search({ header: { 'message-id': messageId } }, { uid: true });
      return Array.isArray(uids) && uids.length > 0;
    } finally {
      lock.release();
    }
  }

  /** Stores a message in `folder` flagged `\Seen` (IMAP APPEND). */
  async appendSeen(folder: string, raw: Buffer): Promise<void> {
    const appended = await this.client.append(folder, raw, ['\\Seen']);
    if (appended === false) throw new Error('the IMAP server did not store the message');
  }

  close(): void {
    this.client.close();
  }
}

/** How long kept connections may stay on the address their destination was checked at before the policy is asked again. */
const RECHECK_MS = 5 * 60_000;

interface BotSessions {
  fingerprint: string;
  checkedAt: number;
  slots: Array<Promise<ImapMailbox> | undefined>;
  next: number;
}

/**
 * A few kept IMAP connections per bot for the outbound side (Sent folder search and APPEND), used in turn so that
 * replies are appended side by side: each is connected on first use and again when it dropped; all are replaced
 * when the settings change and every few minutes (the egress policy is asked each time, so a name that now
 * resolves to an internal address is refused).
 */
export class ImapSessions {
  private readonly bots = new Map<string, BotSessions>();

  constructor(
    private readonly egress: EgressPolicy,
    private readonly perBot = 3,
  ) {}

  /** One of the bot's connections; throws EgressDeniedError (or EgressResolveError) when the policy refuses its server. */
  async get(botId: string, endpoint: EmailEndpoint): Promise<ImapMailbox> {
    const fingerprint = createHash('sha256').update(JSON.stringify(endpoint)).digest('hex');
    let sessions = this.bots.get(botId);
    if (sessions !== undefined && (sessions.fingerprint !== fingerprint || Date.now() - sessions.checkedAt >= RECHECK_MS)) {
      this.release(sessions);
      sessions = undefined;
    }
    if (sessions === undefined) {
      sessions = { fingerprint, checkedAt: Date.now(), slots: [], next: 0 };
      this.bots.set(botId, sessions);
    }
    const slot = sessions.next % this.perBot;
    sessions.next += 1;
    const kept = await sessions.slots[slot]?.catch(() => undefined);
    if (kept?.usable === true) return kept;
    kept?.close();
    const mailbox = imapDestination(this.egress, endpoint).then((destination) => ImapMailbox.connect(endpoint, destination));
    sessions.slots[slot] = mailbox;
    try {
      return await mailbox;
    } catch (error) {
      if (sessions.slots[slot] === mailbox) sessions.slots[slot] = undefined;
      throw error;
    }
  }

  private release(sessions: BotSessions): void {
    for (const slot of sessions.slots) void slot?.then((opened) => opened.close()).catch(() => undefined);
    sessions.slots = [];
  }

  closeAll(): void {
    for (const sessions of this.bots.values()) this.release(sessions);
    this.bots.clear();
  }
}
