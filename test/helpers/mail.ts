/**
 * E-mail test peers: the private Dovecot started by `scripts/services.sh --mail` (users in its passwd file, mail
 * delivered over LMTP, mailboxes read over IMAP) and an in-process `smtp-server` that records what it is sent
 * (parsed with mailparser) and, when asked, relays it into Dovecot so replies land in the recipient's mailbox.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { simpleParser, type ParsedMail } from 'mailparser';
import nodemailer, { type SendMailOptions } from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js';
import { SMTPServer } from 'smtp-server';
import type { Config } from '../../shared/config/index.js';
import { createKernel, type Kernel } from '../../shared/kernel.js';
import { startEmailWorker, type EmailWorkerOptions } from '../../workers/email/index.js';
import { REPO_ROOT } from './process.js';

export const IMAP_PORT = Number(process.env.BOTSERVER_TEST_IMAP_PORT ?? 1143);
export const LMTP_PORT = Number(process.env.BOTSERVER_TEST_LMTP_PORT ?? 2424);
const STATE_DIR = process.env.BOTSERVER_SERVICES_DIR ?? join(process.env.TMPDIR ?? tmpdir(), 'botserver-services');
const USERS_FILE = join(STATE_DIR, 'dovecot', 'users');

/** Where Dovecot keeps the maildirs (`<dir>/<domain>/<user>/Maildir`). */
export function mailDir(): string {
  return join(STATE_DIR, 'mail');
}

/** Starts Dovecot unless it answers already (idempotent), so a test file also runs on its own. */
export function ensureMailServer(): void {
  execFileSync('bash', [join(REPO_ROOT, 'scripts', 'services.sh'), '--mail'], { stdio: ['ignore', 'ignore', 'inherit'] });
}

export interface MailUser {
  address: string;
  password: string;
}

/** A fresh Dovecot user `<prefix>-<random>@example.test` with a random password. */
export function addMailUser(prefix = 'user'): MailUser {
  const address = `${prefix}-${randomBytes(5).toString('hex')}@example.test`;
  const password = randomBytes(12).toString('hex');
  const hash = execFileSync('doveadm', ['pw', '-s', 'SHA512-CRYPT', '-p', password], { encoding: 'utf8' }).trim();
  appendFileSync(USERS_FILE, `${address}:${hash}::::::\n`);
  waitUntilLoginWorks(address, password);
  return { address, password };
}

/**
 * Dovecot re-reads the passwd file when it changes, but a lookup racing the append can miss the new line: ask its
 * auth service until the new account logs in (a few ms), so a test never meets a spurious `auth_failed`.
 */
function waitUntilLoginWorks(address: string, password: string): void {
  const config = join(STATE_DIR, 'dovecot', 'dovecot.conf');
  for (let attempt = 0; attempt < 50; attempt += 1) {
    try {
      execFileSync('doveadm', ['-c', config, 'auth', 'test', address, password], { stdio: 'ignore' });
      return;
    } catch {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
  throw new Error(`Dovecot does not accept the new test account ${address}`);
}

const lmtp = nodemailer.createTransport({ host: '127.0.0.1', port: LMTP_PORT, lmtp: true, ignoreTLS: true } as SMTPTransport.Options);

/** Delivers one mail into Dovecot over LMTP (nodemailer's structured options; `headers` for extra ones). */
export async function deliver(mail: SendMailOptions): Promise<void> {
  await lmtp.sendMail(mail);
}

/** Delivers a raw RFC 5322 message to `to` over LMTP. */
export async function deliverRaw(from: string, to: string, raw: string | Buffer): Promise<void> {
  await lmtp.sendMail({ envelope: { from, to: [to] }, raw });
}

export interface RecordedMail {
  from: string;
  to: string[];
  raw: Buffer;
  parsed: ParsedMail;
  /** performance.now() when the message was accepted. */
  receivedAt: number;
}

/** A message whose final reply to DATA the peer holds back (see SmtpPeer.stallNext). */
export interface StalledMail {
  /** Resolves once the whole message arrived (it is recorded as delivered: the peer may already have passed it on). */
  received: Promise<RecordedMail>;
  /** Lets the held reply go (250), if the client is still there to read it. */
  release(): void;
}

export interface SmtpPeer {
  port: number;
  messages: RecordedMail[];
  /** Holds back the final reply to the next message's DATA, like a peer that stalls after taking the message. */
  stallNext(): StalledMail;
  /** Resolves when at least `count` messages were received, or rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs?: number): Promise<RecordedMail[]>;
  stop(): Promise<void>;
}

/**
 * An SMTP server on 127.0.0.1 (random port, no TLS) accepting any login (or only `credentials` when given). With
 * `relay`, every accepted message is also delivered into Dovecot over LMTP before the server answers 250.
 */
export async function startSmtpPeer(options: { relay?: boolean; credentials?: MailUser } = {}): Promise<SmtpPeer> {
  const messages: RecordedMail[] = [];
  const waiters: Array<() => void> = [];
  let stall: { received: (mail: RecordedMail) => void; held: Promise<void> } | undefined;
  const held: Array<() => void> = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onAuth(auth, _session, callback) {
      const wanted = options.credentials;
      if (wanted !== undefined && (auth.username !== wanted.address || auth.password !== wanted.password)) {
        callback(new Error('Invalid username or password'));
        return;
      }
      callback(null, { user: auth.username ?? 'anonymous' });
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        const from = session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address;
        const to = session.envelope.rcptTo.map((rcpt) => rcpt.address);
        void (async () => {
          try {
            const parsed = await simpleParser(raw);
            if (options.relay === true) for (const rcpt of to) await deliverRaw(from, rcpt, raw);
            const recorded = { from, to, raw, parsed, receivedAt: performance.now() };
            messages.push(recorded);
            for (const wake of waiters.splice(0)) wake();
            const stalled = stall;
            stall = undefined;
            if (stalled !== undefined) {
              stalled.received(recorded);
              await stalled.held;
            }
            callback();
          } catch (error) {
            callback(error instanceof Error ? error : new Error(String(error)));
          }
        })();
      });
    },
  });
  // A client killed mid-transaction resets its connection: that is the client's failure, not the peer's.
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    messages,
    stallNext() {
      let release = (): void => undefined;
      const heldBack = new Promise<void>((resolve) => (release = resolve));
      held.push(release);
      const received = new Promise<RecordedMail>((resolve) => (stall = { received: resolve, held: heldBack }));
      return { received, release };
    },
    async waitFor(count, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (messages.length < count) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`SMTP peer: ${messages.length} of ${count} messages within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 250));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return messages;
    },
    stop: () => {
      for (const release of held.splice(0)) release();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface MailboxMessage {
  uid: number;
  parsed: ParsedMail;
  /** IMAP flags (read from the Sent folder only). */
  flags?: Set<string>;
}

/** Every message in a user's INBOX, parsed. */
export async function readInbox(user: MailUser): Promise<MailboxMessage[]> {
  const client = new ImapFlow({ host: '127.0.0.1', port: IMAP_PORT, secure: false, auth: { user: user.address, pass: user.password }, logger: false });
  await client.connect();
  try {
    const lock = await client.getMailboxLock('INBOX');
    try {
      const result: MailboxMessage[] = [];
      for await (const message of client.fetch('1:*', { uid: true, source: true }, { uid: false })) {
        if (message.source !== undefined) result.push({ uid: message.uid, parsed: await simpleParser(message.source) });
      }
      return result;
    } catch (error) {
      // An empty mailbox answers the 1:* fetch with an error on some servers.
      if (error instanceof Error && /Invalid messageset|No matching messages/i.test(error.message)) return [];
      throw error;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}

/**
 * Every message in a user's Sent folder (the one marked \\Sent, or named Sent), parsed; none when there is no such
 * folder yet.
 */
export async function readSent(user: MailUser): Promise<MailboxMessage[]> {
  const client = new ImapFlow({ host: '127.0.0.1', port: IMAP_PORT, secure: false, auth: { user: user.address, pass: user.password }, logger: false });
  await client.connect();
  try {
    const folders = await client.list();
    const sent = folders.find((folder) => folder.specialUse === '\\Sent') ?? folders.find((folder) => folder.path.toLowerCase() === 'sent');
    if (sent === undefined) return [];
    const lock = await client.getMailboxLock(sent.path, { readOnly: true });
    try {
      if (client.mailbox === false || client.mailbox.exists === 0) return [];
      const result: MailboxMessage[] = [];
      for await (const message of client.fetch('1:*', { uid: true, source: true, flags: true })) {
        if (message.source !== undefined) result.push({ uid: message.uid, parsed: await simpleParser(message.source), flags: message.flags ?? new Set() });
      }
      return result;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}

/** A kept connection to a user's mailbox for polling its Sent folder cheaply (its size, then In-Reply-To headers only). */
export class SentFolderPoller {
  private folder: string | undefined;

  private constructor(private readonly client: ImapFlow) {}

  static async open(user: MailUser): Promise<SentFolderPoller> {
    const client = new ImapFlow({ host: '127.0.0.1', port: IMAP_PORT, secure: false, auth: { user: user.address, pass: user.password }, logger: false });
    client.on('error', () => undefined);
    await client.connect();
    return new SentFolderPoller(client);
  }

  private async sentPath(): Promise<string | undefined> {
    if (this.folder !== undefined) return this.folder;
    const folders = await this.client.list();
    this.folder = (folders.find((folder) => folder.specialUse === '\\Sent') ?? folders.find((folder) => folder.path.toLowerCase() === 'sent'))?.path;
    return this.folder;
  }

  /** The In-Reply-To of every message in Sent once it holds at least `atLeast` messages; else undefined. */
  async inReplyTo(atLeast: number): Promise<string[] | undefined> {
    const path = await this.sentPath();
    if (path === undefined) return atLeast === 0 ? [] : undefined;
    const lock = await this.client.getMailboxLock(path, { readOnly: true });
    try {
      // NOOP: the server reports messages added since the folder was selected.
      await this.client.noop();
      const exists = this.client.mailbox === false ? 0 : this.client.mailbox.exists;
      if (exists < atLeast) return undefined;
      if (exists === 0) return [];
      const found: string[] = [];
      for await (const message of this.client.fetch('1:*', { headers: ['in-reply-to'] })) {
        const value = /in-reply-to:\s*(.*)/i.exec(message.headers?.toString('utf8').replace(/\r?\n\s+/g, ' ') ?? '')?.[1]?.trim();
        if (value !== undefined) found.push(value);
      }
      return found;
    } finally {
      lock.release();
    }
  }

  async close(): Promise<void> {
    await this.client.logout().catch(() => undefined);
  }
}

/** Polls a user's INBOX until `predicate` holds for its messages, or rejects after `timeoutMs`. */
export async function waitForInbox(user: MailUser, predicate: (messages: MailboxMessage[]) => boolean, timeoutMs = 20_000): Promise<MailboxMessage[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const messages = await readInbox(user);
    if (predicate(messages)) return messages;
    if (Date.now() > deadline) throw new Error(`mailbox condition not met within ${timeoutMs} ms (${messages.length} messages)`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** The `email` field of POST /api/bots for a Dovecot user, sending through an SMTP peer (any login accepted unless the peer checks). */
export function channelFor(user: MailUser, smtpPort: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    imap: { host: '127.0.0.1', port: IMAP_PORT, secure: false, user: user.address, pass: user.password },
    smtp: { host: '127.0.0.1', port: smtpPort, secure: false, user: user.address, pass: user.password },
    address: user.address,
    ...extra,
  };
}

/** The e-mail worker family in this process with short timings (scan, lease, poll), on the test's queue prefix. */
export function startTestEmailWorker(config: Config, queuePrefix: string, options: Partial<EmailWorkerOptions> = {}): { kernel: Kernel; stop(): Promise<void> } {
  const kernel = createKernel(config, 'email', { queuePrefix });
  startEmailWorker(kernel, { scanMs: 300, leaseMs: 3000, pollMs: 2000, backoffMs: 200, maxBackoffMs: 2000, ...options });
  return { kernel, stop: () => kernel.close() };
}
