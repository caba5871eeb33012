import { imapDestination, ImapMailbox, parseMail, type FetchedMail, type MailEntry } from '../../adapters/mail/index.js';
import { withTenant } from '../../shared/db/index.js';
import type { EmailChannel } from '../../shared/email/channel.js';
import { countQuarantined } from '../../shared/email/stats.js';
import { isDependencyFailure } from '../../shared/failures.js';
import { FileStaging } from '../../shared/files/index.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';
import { EgressDeniedError } from '../../shared/net/egress.js';
import { AttemptCounter } from './attempts.js';
import { auditEgressRefusal, loadChannel } from './channel.js';
import { crashPoint } from './crash-points.js';
import type { EmailWorkerOptions } from './options.js';
import { storeBatch, type BatchItem, type MailboxScope, type Outcome } from './store-inbound.js';

interface MailboxRow {
  uid_validity: string | null;
  last_uid: string | null;
}

/** What one step of a sync handles: a range of mails fetched and stored together, or one mail too large to fetch. */
type Step = { kind: 'batch'; entries: MailEntry[] } | { kind: 'too_large'; entry: MailEntry };

/** Splits the new mails into batches of at most `batchSize` mails and `batchBytes` bytes; a too-large mail stands alone. */
export function planSteps(entries: readonly MailEntry[], options: Pick<EmailWorkerOptions, 'batchSize' | 'batchBytes' | 'maxMailBytes'>): Step[] {
  const steps: Step[] = [];
  let current: MailEntry[] = [];
  let bytes = 0;
  const flush = (): void => {
    if (current.length > 0) steps.push({ kind: 'batch', entries: current });
    current = [];
    bytes = 0;
  };
  for (const entry of entries) {
    if (entry.size > options.maxMailBytes) {
      flush();
      steps.push({ kind: 'too_large', entry });
      continue;
    }
    if (current.length >= options.batchSize || (current.length > 0 && bytes + entry.size > options.batchBytes)) flush();
    current.push(entry);
    bytes += entry.size;
  }
  flush();
  return steps;
}

/**
 * One IMAP mailbox, watched by this process while it holds the mailbox's lease: IDLE for news, a periodic sync as
 * the polling fallback, reconnect with backoff. A sync lists the mails above the stored position (UIDs and sizes),
 * then fetches and stores them batch by batch, each batch in one transaction that advances the position. A mail that
 * keeps failing (an error or a crash while it is handled) is quarantined after `maxAttempts` tries and the mailbox
 * goes on.
 */
export class MailboxWatcher {
  private stopped = false;
  private mailbox: ImapMailbox | undefined;
  private syncing: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  /** Set while the egress policy refuses the mailbox's server, so that the refusal is audited once, not per retry. */
  private refused = false;
  private readonly scope: MailboxScope;
  readonly done: Promise<void>;

  constructor(
    private readonly kernel: Kernel,
    private readonly botId: string,
    private readonly tenantId: string,
    private readonly options: EmailWorkerOptions,
  ) {
    this.scope = { kernel, botId, tenantId, options, staging: new FileStaging(kernel.config.dataDir) };
    this.done = this.run();
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
    this.mailbox?.close();
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
    const mailbox = await ImapMailbox.connect(channel.imap, destination, { autoIdleDelayMs: 100 });
    this.mailbox = mailbox;
    if (this.stopped) {
      mailbox.close();
      return;
    }
    await mailbox.openInbox();
    // News that arrives while a sync runs is picked up by one more sync, not by one per notification.
    let queued = false;
    const schedule = (): void => {
      if (queued) return;
      queued = true;
      this.syncing = this.syncing
        .then(() => {
          queued = false;
          return this.sync(mailbox, channel);
        })
        .catch((error: unknown) => {
          queued = false;
          if (!this.stopped) log.warn('mailbox sync failed', { botId: this.botId, error: error instanceof Error ? error.message.slice(0, 200) : 'unknown' });
          mailbox.close();
        });
    };
    await this.reconcile();
    mailbox.onNewMail(schedule);
    const poll = setInterval(schedule, this.options.pollMs);
    schedule();
    try {
      await mailbox.closed;
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
    await Promise.all(open.map((row) => this.enqueueReply(row.conversation_id, row.id)));
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

  private async enqueueReply(conversationId: string, messageId: string): Promise<void> {
    await this.kernel.queues.enqueue('bot-reply', 'reply', { tenantId: this.tenantId, conversationId, messageId, botId: this.botId }, { jobId: messageId });
  }

  private async enqueueFiles(fileIds: readonly string[]): Promise<void> {
    await Promise.all(fileIds.map((fileId) => this.kernel.queues.enqueue('file-encrypt', 'encrypt', { tenantId: this.tenantId, fileId }, { jobId: fileId })));
  }

  /** Handles every mail above the stored position, batch by batch. Runs one at a time per mailbox. */
  private async sync(mailbox: ImapMailbox, channel: EmailChannel): Promise<void> {
    const uidValidity = mailbox.uidValidity;
    if (this.stopped || !mailbox.usable || uidValidity === undefined) return;
    const state = await withTenant(this.kernel.db, this.tenantId, (trx) => trx('email_mailboxes').where({ bot_id: this.botId }).first<MailboxRow | undefined>('uid_validity', 'last_uid'));
    // A changed UIDVALIDITY invalidates every stored UID: start over, the Message-ID dedupe keeps it exactly-once.
    const sameEpoch = state !== undefined && state.uid_validity !== null && Number(state.uid_validity) === uidValidity;
    const lastUid = sameEpoch ? Number(state.last_uid ?? 0) : 0;
    if (!sameEpoch && state !== undefined) log.info('mailbox UIDVALIDITY changed: re-syncing by Message-ID', { botId: this.botId });
    const entries = await mailbox.listAfter(lastUid);
    if (entries.length === 0) return;
    const started = Date.now();
    const attempts = new AttemptCounter(this.kernel.redis, this.kernel.queues.prefix, this.botId, uidValidity);
    for (const step of planSteps(entries, this.options)) {
      if (this.stopped) return;
      if (step.kind === 'too_large') {
        await this.finish(channel, uidValidity, attempts, [{ kind: 'quarantine', uid: step.entry.uid, size: step.entry.size, reason: 'too_large', attempts: 0 }]);
        continue;
      }
      const first = step.entries[0];
      const last = step.entries.at(-1);
      if (first === undefined || last === undefined) continue;
      const fetched = await mailbox.fetchRange(first.uid, last.uid);
      if (fetched.length === 0) continue;
      await crashPoint(this.kernel, 'inbound-after-fetch');
      await this.handleBatch(channel, uidValidity, attempts, fetched);
    }
    log.debug('mailbox synced', { botId: this.botId, mails: entries.length, ms: Date.now() - started });
  }

  /**
   * A fetched batch: stored in one transaction when none of its mails was tried before; otherwise (or when that
   * transaction fails through a mail's fault) one mail at a time, each counted as an attempt before it is handled,
   * so that only the mail at fault uses up its attempts.
   */
  private async handleBatch(channel: EmailChannel, uidValidity: number, attempts: AttemptCounter, fetched: readonly FetchedMail[]): Promise<void> {
    const uids = fetched.map((message) => message.uid);
    if (!(await attempts.anyStarted(uids))) {
      await attempts.begin(uids);
      let outcomes: Outcome[] | undefined;
      try {
        const items = await Promise.all(fetched.map(async (message): Promise<BatchItem> => ({ kind: 'mail', uid: message.uid, source: message.source, mail: await parseMail(message.source) })));
        outcomes = await storeBatch(this.scope, channel, uidValidity, items);
      } catch (error) {
        if (this.stopped || isDependencyFailure(error)) {
          await attempts.undo(uids).catch(() => undefined);
          throw error;
        }
        log.warn('a batch of inbound mail failed: handling its mails one at a time', { botId: this.botId, mails: uids.length, error: error instanceof Error ? error.name : 'unknown' });
      }
      if (outcomes !== undefined) {
        await this.stored(attempts, outcomes);
        return;
      }
    }
    for (const message of fetched) {
      if (this.stopped) return;
      await this.handleOne(channel, uidValidity, attempts, message);
    }
  }

  private async handleOne(channel: EmailChannel, uidValidity: number, attempts: AttemptCounter, message: FetchedMail): Promise<void> {
    const { uid, source } = message;
    const [count = 1] = await attempts.begin([uid]);
    if (count > this.options.maxAttempts) {
      await this.finish(channel, uidValidity, attempts, [{ kind: 'quarantine', uid, size: source.length, reason: await attempts.reason(uid), attempts: count - 1 }]);
      return;
    }
    let outcomes: Outcome[];
    try {
      outcomes = await storeBatch(this.scope, channel, uidValidity, [{ kind: 'mail', uid, source, mail: await parseMail(source) }]);
    } catch (error) {
      if (this.stopped || isDependencyFailure(error)) {
        await attempts.undo([uid]).catch(() => undefined);
        throw error;
      }
      await attempts.failed(uid);
      if (count < this.options.maxAttempts) throw error;
      log.warn('inbound mail failed on its last attempt', { botId: this.botId, uid, error: error instanceof Error ? error.name : 'unknown' });
      await this.finish(channel, uidValidity, attempts, [{ kind: 'quarantine', uid, size: source.length, reason: 'failed', attempts: count }]);
      return;
    }
    await this.stored(attempts, outcomes);
  }

  /** Stores the items in one transaction, then does what their outcomes need. */
  private async finish(channel: EmailChannel, uidValidity: number, attempts: AttemptCounter, items: readonly BatchItem[]): Promise<void> {
    await this.stored(attempts, await storeBatch(this.scope, channel, uidValidity, items));
  }

  /**
   * After the commit: forgets the mails' attempts and queues their files and replies. A failure here is no fault of
   * the mails (they are stored); a crash before it is covered by reconcile().
   */
  private async stored(attempts: AttemptCounter, outcomes: readonly Outcome[]): Promise<void> {
    await attempts.finish(outcomes.map((outcome) => outcome.uid));
    if (outcomes.some((outcome) => outcome.kind === 'stored')) await crashPoint(this.kernel, 'inbound-after-store');
    await Promise.all(outcomes.map((outcome) => this.follow(outcome)));
  }

  /** What one outcome still needs outside the transaction. */
  private async follow(outcome: Outcome): Promise<void> {
    switch (outcome.kind) {
      case 'stored':
        await this.enqueueFiles(outcome.fileIds);
        await this.enqueueReply(outcome.conversationId, outcome.messageId);
        return;
      case 'duplicate':
        if (!outcome.answered) await this.enqueueReply(outcome.conversationId, outcome.messageId);
        return;
      case 'quarantined':
        log.warn('inbound mail quarantined', { botId: this.botId, uid: outcome.uid, reason: outcome.reason });
        await countQuarantined(this.kernel.redis, this.kernel.queues.prefix, outcome.reason);
        return;
      case 'skipped':
        if (outcome.reason !== 'rate_limited') log.info('inbound mail not answered', { botId: this.botId, reason: outcome.reason });
        return;
    }
  }
}
