import { randomUUID } from 'node:crypto';
import { UnrecoverableError } from 'bullmq';
import type { ImapFlow } from 'imapflow';
import type { Knex } from 'knex';
import { simpleParser } from 'mailparser';
import { imapClient, imapDestination } from '../adapters/imap/index.js';
import { sendReply, SmtpPools } from '../adapters/smtp/index.js';
import { findMessage, insertMessage } from '../shared/chat/index.js';
import { blindIndex, normaliseEmail, openString, sealString } from '../shared/crypto/index.js';
import { withTenant } from '../shared/db/index.js';
import { recordAttachments, selectAttachments, skippedCount, stageAttachments, type StagedAttachment } from '../shared/email/attachments.js';
import { emailMessageIdIndex, openEmailChannel, type EmailChannel } from '../shared/email/channel.js';
import { extractMeta, inputText, isSafeAddress, normaliseSubject, replySubject, skipReason, type InboundMeta, type SkipReason } from '../shared/email/message.js';
import { FileStaging } from '../shared/files/index.js';
import type { Kernel } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import { EgressDeniedError } from '../shared/net/egress.js';
import type { JobData } from '../shared/queue/index.js';

/** Timings of the e-mail family; tests shorten them. */
export interface EmailWorkerOptions {
  /** How often the list of active mailboxes is read and free leases are taken. */
  scanMs: number;
  /** Lease time to live; renewed every third of it. */
  leaseMs: number;
  /** Polling fallback: a sync this often even without IDLE news. */
  pollMs: number;
  /** Reconnect backoff: first delay, doubled up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
  /** A conversation continues by subject and sender within this window. */
  threadWindowHours: number;
}

export const DEFAULT_EMAIL_OPTIONS: EmailWorkerOptions = { scanMs: 5000, leaseMs: 30_000, pollMs: 30_000, backoffMs: 1000, maxBackoffMs: 60_000, threadWindowHours: 72 };

/** How long the "this inbound mail was answered" mark lives in Redis. */
const IDEMPOTENCY_TTL_S = 90 * 24 * 3600;

/**
 * Test-only crash points (`BOTSERVER_TEST_EMAIL_CRASH`): the process kills itself with SIGKILL there, to prove the
 * exactly-once rules. Ignored unless NODE_ENV=test.
 */
function crashPoint(name: 'inbound-after-fetch' | 'inbound-after-store' | 'outbound-after-accept'): void {
  if (process.env.NODE_ENV === 'test' && process.env.BOTSERVER_TEST_EMAIL_CRASH === name) process.kill(process.pid, 'SIGKILL');
}

const metaAad = (messageId: string): string => `messages.email_meta:${messageId}`;
const subjectAad = (conversationId: string): string => `conversations.subject:${conversationId}`;

function threadKey(kernel: Kernel, botId: string, meta: InboundMeta): string {
  return blindIndex(kernel.keys.blindIndexKey, 'conversations.email_thread', `${botId}\0${normaliseSubject(meta.subject)}\0${normaliseEmail(meta.from.address)}`);
}

interface MailboxRow {
  uid_validity: string | null;
  last_uid: string | null;
}

interface BotChannelRow {
  email_channel_ciphertext: string | null;
  deleted_at: Date | null;
}

async function loadChannel(kernel: Kernel, tenantId: string, botId: string): Promise<EmailChannel | undefined> {
  const row = await withTenant(kernel.db, tenantId, (trx) => trx('bots').where({ id: botId }).first<BotChannelRow | undefined>('email_channel_ciphertext', 'deleted_at'));
  if (row === undefined || row.deleted_at !== null || row.email_channel_ciphertext === null) return undefined;
  return openEmailChannel(kernel.keys.columnRing, botId, row.email_channel_ciphertext);
}

/** The conversation an inbound mail continues: In-Reply-To, then References (newest first), then subject + sender. */
async function findThread(trx: Knex.Transaction, kernel: Kernel, botId: string, meta: InboundMeta, windowHours: number): Promise<string | undefined> {
  const candidates = [...(meta.inReplyTo === null ? [] : [meta.inReplyTo]), ...[...meta.references].reverse()];
  for (const id of candidates) {
    const row = await trx('messages')
      .join('conversations', 'conversations.id', 'messages.conversation_id')
      .where({ 'messages.email_message_id_index': emailMessageIdIndex(kernel.keys.blindIndexKey, botId, id), 'conversations.bot_id': botId })
      .first<{ conversation_id: string } | undefined>('messages.conversation_id');
    if (row !== undefined) return row.conversation_id;
  }
  const bySubject = await trx('conversations')
    .where({ bot_id: botId, channel: 'email', email_thread_key: threadKey(kernel, botId, meta) })
    .where('updated_at', '>', trx.raw(`now() - make_interval(hours => ?)`, [windowHours]))
    .orderBy('updated_at', 'desc')
    .first<{ id: string } | undefined>('id');
  return bySubject?.id;
}

type Outcome = { kind: 'stored'; messageId: string; conversationId: string; fileIds: string[] } | { kind: 'duplicate'; messageId: string; conversationId: string; answered: boolean } | { kind: 'skipped' };

/**
 * One IMAP mailbox, watched by this process while it holds the mailbox's lease: IDLE (imapflow) for news, a
 * periodic sync as the polling fallback, reconnect with backoff. Each sync fetches UIDs above the stored position;
 * every mail is stored (or skipped) in the same transaction that advances the position.
 */
class MailboxWatcher {
  private stopped = false;
  private client: ImapFlow | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  /** Set while the egress policy refuses the mailbox's server, so that the refusal is audited once, not per retry. */
  private refused = false;
  private readonly staging: FileStaging;
  readonly done: Promise<void>;

  constructor(
    private readonly kernel: Kernel,
    private readonly botId: string,
    private readonly tenantId: string,
    private readonly options: EmailWorkerOptions,
    private readonly keyPrefix: string,
  ) {
    this.staging = new FileStaging(kernel.config.dataDir);
    this.done = this.run();
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
    this.client?.close();
  }

  private async run(): Promise<void> {
    let backoff = this.options.backoffMs;
    while (!this.stopped) {
      try {
        const channel = await loadChannel(this.kernel, this.tenantId, this.botId);
        if (channel === undefined) return;
        await this.watch(channel);
        backoff = this.options.backoffMs;
      } catch (error) {
        if (this.stopped) return;
        log.warn('mailbox connection failed', { botId: this.botId, error: error instanceof Error ? error.name : 'unknown', code: (error as { code?: unknown }).code });
      }
      if (this.stopped) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoff);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      backoff = Math.min(backoff * 2, this.options.maxBackoffMs);
    }
  }

  private async watch(channel: EmailChannel): Promise<void> {
    // Checked (and resolved) on every connection: a name that now resolves to an internal address is refused.
    const destination = await imapDestination(this.kernel.egress, channel.imap).catch(async (error: unknown) => {
      if (error instanceof EgressDeniedError && !this.refused) {
        this.refused = true;
        await auditEgressRefusal(this.kernel, this.tenantId, this.botId, error);
      }
      throw error;
    });
    this.refused = false;
    const client = imapClient(channel.imap, destination, { autoIdleDelayMs: 100 });
    this.client = client;
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.on('error', (error: Error) => log.debug('imap error', { botId: this.botId, error: error.name }));
    await client.connect();
    if (this.stopped) {
      client.close();
      return;
    }
    await client.mailboxOpen('INBOX');
    const schedule = (): void => {
      this.syncing = this.syncing.then(() => this.sync(client, channel)).catch((error: unknown) => {
        if (!this.stopped) log.warn('mailbox sync failed', { botId: this.botId, error: error instanceof Error ? error.message.slice(0, 200) : 'unknown' });
        client.close();
      });
    };
    await this.reconcile();
    client.on('exists', schedule);
    const poll = setInterval(schedule, this.options.pollMs);
    schedule();
    try {
      await closed;
    } finally {
      clearInterval(poll);
      await this.syncing;
    }
  }

  /**
   * Stored mails of this bot still without a reply get their bot-reply job again (its id is the message id, so a
   * job already queued, running or failed is not added twice): covers a crash between storing and enqueueing.
   */
  private async reconcile(): Promise<void> {
    const open = await withTenant(this.kernel.db, this.tenantId, (trx) =>
      trx('messages')
        .join('conversations', 'conversations.id', 'messages.conversation_id')
        .where({ 'conversations.bot_id': this.botId, 'conversations.channel': 'email', 'messages.role': 'user' })
        .whereNotNull('messages.email_message_id_index')
        .where('messages.created_at', '>', trx.raw("now() - interval '7 days'"))
        .whereNotExists(trx('messages as r').whereRaw('r.reply_to = messages.id').select(trx.raw('1')))
        .limit(1000)
        .select<Array<{ id: string; conversation_id: string }>>('messages.id', 'messages.conversation_id'),
    );
    for (const row of open) {
      await this.kernel.queues.enqueue('bot-reply', 'reply', { tenantId: this.tenantId, conversationId: row.conversation_id, messageId: row.id }, { jobId: row.id });
    }
    // Attachments stored with their mail whose file-encrypt job was never added (same job id: never twice).
    const pending = await withTenant(this.kernel.db, this.tenantId, (trx) =>
      trx('message_attachments as a')
        .join('files as f', 'f.id', 'a.file_id')
        .join('messages as m', 'm.id', 'a.message_id')
        .join('conversations as c', 'c.id', 'm.conversation_id')
        .where({ 'c.bot_id': this.botId, 'c.channel': 'email', 'f.status': 'pending' })
        .where('m.created_at', '>', trx.raw("now() - interval '7 days'"))
        .limit(1000)
        .pluck<string[]>('a.file_id'),
    );
    await this.enqueueFiles(pending);
  }

  private async enqueueFiles(fileIds: readonly string[]): Promise<void> {
    for (const fileId of fileIds) await this.kernel.queues.enqueue('file-encrypt', 'encrypt', { tenantId: this.tenantId, fileId }, { jobId: fileId });
  }

  /** Fetches and handles every mail above the stored position. Runs one at a time per mailbox. */
  private async sync(client: ImapFlow, channel: EmailChannel): Promise<void> {
    if (this.stopped || !client.usable || client.mailbox === false) return;
    const uidValidity = Number(client.mailbox.uidValidity);
    const state = await withTenant(this.kernel.db, this.tenantId, (trx) => trx('email_mailboxes').where({ bot_id: this.botId }).first<MailboxRow | undefined>('uid_validity', 'last_uid'));
    // A changed UIDVALIDITY invalidates every stored UID: start over, the Message-ID dedupe keeps it exactly-once.
    const sameEpoch = state !== undefined && state.uid_validity !== null && Number(state.uid_validity) === uidValidity;
    const lastUid = sameEpoch ? Number(state.last_uid ?? 0) : 0;
    if (!sameEpoch && state !== undefined) log.info('mailbox UIDVALIDITY changed: re-syncing by Message-ID', { botId: this.botId });
    const fetched: Array<{ uid: number; source: Buffer }> = [];
    for await (const message of client.fetch(`${lastUid + 1}:*`, { uid: true, source: true }, { uid: true })) {
      if (message.uid > lastUid && message.source !== undefined) fetched.push({ uid: message.uid, source: message.source });
    }
    fetched.sort((a, b) => a.uid - b.uid);
    const started = Date.now();
    if (fetched.length > 0) crashPoint('inbound-after-fetch');
    for (const { uid, source } of fetched) {
      if (this.stopped) return;
      const outcome = await this.handle(channel, uidValidity, uid, source);
      if (outcome.kind === 'stored') crashPoint('inbound-after-store');
      // A crash before this leaves pending files: reconcile() (and the files worker's sweep) enqueue them.
      if (outcome.kind === 'stored') await this.enqueueFiles(outcome.fileIds);
      if (outcome.kind === 'stored' || (outcome.kind === 'duplicate' && !outcome.answered)) {
        await this.kernel.queues.enqueue('bot-reply', 'reply', { tenantId: this.tenantId, conversationId: outcome.conversationId, messageId: outcome.messageId }, { jobId: outcome.messageId });
      }
    }
    if (fetched.length > 0) log.debug('mailbox synced', { botId: this.botId, mails: fetched.length, ms: Date.now() - started });
  }

  /**
   * Stores one mail as a user message of its thread (or skips it) and advances the position, in one transaction.
   * Its accepted attachments are staged inside that transaction, once it is known the mail is new, and recorded
   * (files + message_attachments) in it: a mail stored once has its files once. When the transaction fails, what
   * was staged is removed; after a crash the files worker's sweep removes staged files that have no row.
   */
  private async handle(channel: EmailChannel, uidValidity: number, uid: number, source: Buffer): Promise<Outcome> {
    const mail = await simpleParser(source, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true });
    const meta = extractMeta(mail, source);
    const kernel = this.kernel;
    const idIndex = meta === undefined ? undefined : emailMessageIdIndex(kernel.keys.blindIndexKey, this.botId, meta.messageId);
    let reason: SkipReason | null = skipReason(mail, meta, channel.address);
    const attachments = reason === null ? await selectAttachments(mail, { maxSize: kernel.config.maxUploadSize, allowedTypes: kernel.config.uploadTypes }) : undefined;
    const staged: StagedAttachment[] = [];
    const advance = (trx: Knex.Transaction): Promise<unknown> =>
      trx('email_mailboxes')
        .insert({ bot_id: this.botId, tenant_id: this.tenantId, uid_validity: uidValidity, last_uid: uid })
        .onConflict('bot_id')
        .merge({ uid_validity: uidValidity, last_uid: uid, updated_at: trx.fn.now() });
    const outcome = await withTenant(kernel.db, this.tenantId, async (trx): Promise<Outcome> => {
      if (reason === null && meta !== undefined && idIndex !== undefined) {
        const existing = await trx('messages').where({ email_message_id_index: idIndex }).first<{ id: string; conversation_id: string; role: string } | undefined>('id', 'conversation_id', 'role');
        if (existing !== undefined) {
          await advance(trx);
          if (existing.role !== 'user') return { kind: 'skipped' };
          const reply = await trx('messages').where({ reply_to: existing.id }).first<{ id: string } | undefined>('id');
          return { kind: 'duplicate', messageId: existing.id, conversationId: existing.conversation_id, answered: reply !== undefined };
        }
        if (!(await this.withinRate(channel, meta))) reason = 'rate_limited';
      }
      if (reason !== null || meta === undefined || idIndex === undefined) {
        log.info('inbound mail not answered', { botId: this.botId, reason });
        await advance(trx);
        return { kind: 'skipped' };
      }
      let conversationId = await findThread(trx, kernel, this.botId, meta, this.options.threadWindowHours);
      if (conversationId === undefined) {
        conversationId = randomUUID();
        await trx('conversations').insert({
          id: conversationId,
          tenant_id: this.tenantId,
          bot_id: this.botId,
          channel: 'email',
          email_thread_key: threadKey(kernel, this.botId, meta),
          subject_ciphertext: sealString(kernel.keys.columnRing, meta.subject, subjectAad(conversationId)),
        });
      } else {
        await trx('conversations').where({ id: conversationId }).update({ updated_at: trx.fn.now() });
      }
      const id = randomUUID();
      await insertMessage(trx, kernel.keys.columnRing, { id, tenantId: this.tenantId, conversationId, role: 'user', text: inputText(mail) });
      await trx('messages').where({ id }).update({ email_message_id_index: idIndex, email_meta_ciphertext: sealString(kernel.keys.columnRing, JSON.stringify(meta), metaAad(id)) });
      // Staged only now that the mail is known to be new (its Message-ID row is taken), recorded in this transaction.
      if (attachments !== undefined && attachments.accepted.length > 0) {
        await stageAttachments(this.staging, kernel.keys.payloadRing, this.tenantId, attachments.accepted, staged);
        await recordAttachments(trx, kernel.keys.columnRing, this.tenantId, id, staged);
      }
      await advance(trx);
      return { kind: 'stored', messageId: id, conversationId, fileIds: staged.map((file) => file.fileId) };
    }).catch(async (error: unknown) => {
      // Nothing was stored: the staged files belong to no row. (After a crash, the files worker's sweep removes them.)
      await Promise.allSettled(staged.map((file) => this.staging.remove(this.tenantId, file.fileId)));
      throw error;
    });
    if (outcome.kind === 'stored' && attachments !== undefined && (staged.length > 0 || skippedCount(attachments) > 0)) {
      // Counts only: nothing of an attachment's name or content is logged.
      log.info('inbound mail attachments', { botId: this.botId, stored: staged.length, skipped: { ...attachments.skipped } });
    }
    return outcome;
  }

  /** At most `maxRepliesPerSenderPerHour` answered mails per correspondent and hour (a fixed window in Redis). */
  private async withinRate(channel: EmailChannel, meta: InboundMeta): Promise<boolean> {
    const sender = blindIndex(this.kernel.keys.blindIndexKey, 'email.rate', `${this.botId}\0${normaliseEmail(meta.from.address)}`);
    const key = `${this.keyPrefix}:email:rate:${sender}:${Math.floor(Date.now() / 3_600_000)}`;
    const count = await this.kernel.redis.incr(key);
    if (count === 1) await this.kernel.redis.expire(key, 3600);
    return count <= channel.maxRepliesPerSenderPerHour;
  }
}

const RENEW_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE_LUA = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/**
 * Spreads mailboxes over the e-mail worker processes: a mailbox is watched by the process holding its lease in
 * Redis (SET NX PX, renewed; a crashed holder's lease expires and another process takes it over).
 */
class InboundManager {
  private readonly owner = randomUUID();
  private readonly watchers = new Map<string, MailboxWatcher>();
  private readonly timers: NodeJS.Timeout[] = [];
  private scanning: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly kernel: Kernel,
    private readonly options: EmailWorkerOptions,
  ) {
    this.keyPrefix = kernel.queues.prefix;
  }

  private readonly keyPrefix: string;

  private leaseKey(botId: string): string {
    return `${this.keyPrefix}:email:lease:${botId}`;
  }

  start(): void {
    const scan = (): void => {
      this.scanning = this.scanning.then(() => this.scan()).catch((error: unknown) => {
        log.warn('mailbox scan failed', { error: error instanceof Error ? error.message.slice(0, 200) : 'unknown' });
      });
    };
    scan();
    this.timers.push(setInterval(scan, this.options.scanMs));
    this.timers.push(setInterval(() => void this.renew().catch(() => undefined), Math.max(200, Math.floor(this.options.leaseMs / 3))));
  }

  private async scan(): Promise<void> {
    if (this.stopped) return;
    const result = await this.kernel.db.raw<{ rows: Array<{ bot_id: string; tenant_id: string }> }>('select bot_id, tenant_id from email_active_mailboxes()');
    const active = new Set(result.rows.map((row) => row.bot_id));
    for (const [botId, watcher] of this.watchers) {
      if (!active.has(botId)) await this.drop(botId, watcher);
    }
    for (const { bot_id: botId, tenant_id: tenantId } of result.rows) {
      if (this.stopped || this.watchers.has(botId)) continue;
      const taken = await this.kernel.redis.set(this.leaseKey(botId), this.owner, 'PX', this.options.leaseMs, 'NX');
      if (taken !== 'OK') continue;
      const watcher = new MailboxWatcher(this.kernel, botId, tenantId, this.options, this.keyPrefix);
      this.watchers.set(botId, watcher);
      void watcher.done.finally(() => {
        if (this.watchers.get(botId) === watcher) void this.drop(botId, watcher);
      });
    }
  }

  private async renew(): Promise<void> {
    for (const [botId, watcher] of this.watchers) {
      const kept = await this.kernel.redis.eval(RENEW_LUA, 1, this.leaseKey(botId), this.owner, String(this.options.leaseMs));
      if (kept !== 1) {
        log.warn('mailbox lease lost', { botId });
        watcher.stop();
        this.watchers.delete(botId);
      }
    }
  }

  private async drop(botId: string, watcher: MailboxWatcher): Promise<void> {
    this.watchers.delete(botId);
    watcher.stop();
    await watcher.done.catch(() => undefined);
    await this.kernel.redis.eval(RELEASE_LUA, 1, this.leaseKey(botId), this.owner).catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    await this.scanning;
    await Promise.allSettled([...this.watchers].map(([botId, watcher]) => this.drop(botId, watcher)));
  }
}

interface OutboundContext {
  channel: EmailChannel;
  botId: string;
  meta: InboundMeta;
  inboundIndex: string;
  text: string;
}

async function loadOutbound(kernel: Kernel, data: JobData<'email-outbound'>): Promise<OutboundContext> {
  return withTenant(kernel.db, data.tenantId, async (trx) => {
    const reply = await findMessage(trx, kernel.keys.columnRing, data.botMessageId);
    if (reply === undefined || reply.replyTo !== data.replyToMessageId || reply.conversationId !== data.conversationId) throw new UnrecoverableError('the reply no longer exists');
    const inbound = await trx('messages').where({ id: data.replyToMessageId }).first<{ email_meta_ciphertext: string | null; email_message_id_index: string | null } | undefined>('email_meta_ciphertext', 'email_message_id_index');
    if (inbound?.email_meta_ciphertext == null || inbound.email_message_id_index === null) throw new UnrecoverableError('the answered message did not come by e-mail');
    const bot = await trx('conversations')
      .join('bots', 'bots.id', 'conversations.bot_id')
      .where('conversations.id', data.conversationId)
      .whereNull('bots.deleted_at')
      .first<{ id: string; email_channel_ciphertext: string | null } | undefined>('bots.id', 'bots.email_channel_ciphertext');
    if (bot?.email_channel_ciphertext == null) throw new UnrecoverableError('the bot has no e-mail channel any more');
    const meta = JSON.parse(openString(kernel.keys.columnRing, inbound.email_meta_ciphertext, metaAad(data.replyToMessageId))) as InboundMeta;
    return { channel: openEmailChannel(kernel.keys.columnRing, bot.id, bot.email_channel_ciphertext), botId: bot.id, meta, inboundIndex: inbound.email_message_id_index, text: reply.text };
  });
}

/** Whether the SMTP server certainly did not take the message (so sending again cannot duplicate it). */
function certainlyNotAccepted(error: unknown): boolean {
  const record = error as { responseCode?: unknown; command?: unknown; code?: unknown };
  if (typeof record.responseCode === 'number' && record.responseCode >= 400) return true;
  return ['ECONNECTION', 'EDNS', 'EAUTH', 'ETLS', 'ECONNREFUSED'].includes(String(record.code)) || record.command === 'CONN';
}

/**
 * Sends the bot's reply to one inbound mail, at most once: a Redis mark per inbound Message-ID is taken (SET NX)
 * before the SMTP transaction and only released when the server certainly refused. A worker that dies between the
 * server's acceptance and the job's completion leaves the mark, and the retried job sends nothing.
 */
export async function sendEmailReply(kernel: Kernel, pools: SmtpPools, data: JobData<'email-outbound'>): Promise<'sent' | 'already'> {
  const context = await loadOutbound(kernel, data);
  const { channel, meta } = context;
  if (!isSafeAddress(meta.from.address)) throw new UnrecoverableError('unsafe recipient address');
  const domain = channel.address.slice(channel.address.lastIndexOf('@') + 1);
  const outgoingId = `${data.botMessageId}@${domain}`;
  // Recorded before sending: a reply to the reply finds this conversation by its In-Reply-To.
  await withTenant(kernel.db, data.tenantId, (trx) => trx('messages').where({ id: data.botMessageId }).update({ email_message_id_index: emailMessageIdIndex(kernel.keys.blindIndexKey, context.botId, outgoingId) }));
  const transport = await pools.get(context.botId, channel.smtp).catch(async (error: unknown) => {
    if (!(error instanceof EgressDeniedError)) throw error;
    await auditEgressRefusal(kernel, data.tenantId, context.botId, error);
    // The settings would be refused again on every attempt.
    throw new UnrecoverableError(`the egress policy refuses the bot's SMTP server (${error.reason})`);
  });
  const mark = `${kernel.queues.prefix}:email:replied:${context.inboundIndex}`;
  const taken = await kernel.redis.set(mark, `sending:${data.botMessageId}`, 'EX', IDEMPOTENCY_TTL_S, 'NX');
  if (taken !== 'OK') return 'already';
  try {
    await sendReply(transport, {
      from: { name: '', address: channel.address },
      to: { name: meta.from.name, address: meta.from.address },
      subject: replySubject(meta.subject),
      text: context.text,
      messageId: `<${outgoingId}>`,
      inReplyTo: `<${meta.messageId}>`,
      references: [...meta.references, meta.messageId].slice(-20).map((id) => `<${id}>`),
    });
  } catch (error) {
    if (certainlyNotAccepted(error)) await kernel.redis.del(mark);
    throw error;
  }
  crashPoint('outbound-after-accept');
  await kernel.redis.set(mark, `sent:${data.botMessageId}`, 'EX', IDEMPOTENCY_TTL_S);
  return 'sent';
}

/** A stored channel whose server the egress policy now refuses (its name may resolve elsewhere than when it was saved). */
async function auditEgressRefusal(kernel: Kernel, tenantId: string, botId: string, error: EgressDeniedError): Promise<void> {
  log.warn('egress policy refused a mailbox server', { botId, protocol: error.protocol, reason: error.reason });
  await kernel.audit.record({
    type: 'security.violation',
    outcome: 'denied',
    tenantId,
    target: `bot:${botId}`,
    details: { violation: 'egress_denied', field: error.field, protocol: error.protocol, reason: error.reason, host: error.host },
  });
}

/** The `email` worker family: inbound (IMAP watchers under leases) and outbound (the email-outbound queue). */
export function startEmailWorker(kernel: Kernel, options: Partial<EmailWorkerOptions> = {}): void {
  if (!kernel.config.features.has('email')) {
    log.info('email worker family idle: the email feature is not enabled (BOTSERVER_FEATURES)');
    return;
  }
  const settings = { ...DEFAULT_EMAIL_OPTIONS, ...options };
  const pools = new SmtpPools(kernel.egress);
  kernel.queues.worker(
    'email-outbound',
    async (data, job) => {
      const result = await sendEmailReply(kernel, pools, data);
      if (result === 'already') log.info('email reply already sent (or in doubt): not sent again', { jobId: job.id });
    },
    { concurrency: 10 },
  );
  const inbound = new InboundManager(kernel, settings);
  inbound.start();
  // The kernel closes the queues; the watchers must stop (and release their leases) before that.
  const close = kernel.close.bind(kernel);
  kernel.close = async () => {
    await inbound.stop();
    await close();
    pools.closeAll();
  };
}
