import { randomUUID } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import { createReplyEngine, LlmError, type BotProfile, type ChatTurn, type BotRule, type LlmSettings, type ReplyEngine } from '../adapters/llm/index.js';
import { ChatEmitter, findMessage, findReplyTo, insertMessage, listMessages, toMessageEvent, type StoredMessage } from '../shared/chat/index.js';
import { withTenant } from '../shared/db/index.js';
import type { Kernel } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import type { JobData } from '../shared/queue/index.js';

const HISTORY_TURNS = 20;

interface BotRow {
  name: string;
  rules: BotRule[];
  llm: LlmSettings | null;
}

function isLastAttempt(job: Job, error: unknown): boolean {
  if (error instanceof UnrecoverableError) return true;
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

type Turn =
  | { kind: 'answered'; reply: StoredMessage }
  | { kind: 'gone' }
  | { kind: 'open'; message: StoredMessage; profile: BotProfile; history: ChatTurn[] };

/** Loads the message, its conversation's bot and recent history, all in the job's tenant. */
async function loadTurn(kernel: Kernel, data: JobData<'bot-reply'>): Promise<Turn> {
  return withTenant(kernel.db, data.tenantId, async (trx) => {
    const ring = kernel.keys.columnRing;
    const existing = await findReplyTo(trx, ring, data.messageId);
    if (existing !== undefined) return { kind: 'answered', reply: existing };
    const message = await findMessage(trx, ring, data.messageId);
    if (message === undefined || message.conversationId !== data.conversationId) return { kind: 'gone' };
    const bot = await trx('conversations')
      .join('bots', 'bots.id', 'conversations.bot_id')
      .where('conversations.id', data.conversationId)
      .whereNull('bots.deleted_at')
      .first<BotRow | undefined>('bots.name', 'bots.rules', 'bots.llm');
    if (bot === undefined) return { kind: 'gone' };
    const history = await listMessages(trx, ring, data.conversationId, { before: message, limit: HISTORY_TURNS });
    const profile: BotProfile = { name: bot.name, rules: bot.rules, llm: bot.llm };
    return { kind: 'open', message, profile, history: history.map(({ role, text }) => ({ role, text })) };
  });
}

/**
 * The reply family: answers one accepted message. The reply is stored with `reply_to` = the message (unique), so
 * a retried or re-delivered job never answers twice; it only announces the reply already stored.
 */
export async function answerMessage(kernel: Kernel, engine: ReplyEngine, chat: ChatEmitter, data: JobData<'bot-reply'>): Promise<void> {
  const turn = await loadTurn(kernel, data);
  if (turn.kind === 'answered') {
    await forwardByEmail(kernel, data, turn.reply.messageId);
    chat.messageNew(toMessageEvent(turn.reply));
    return;
  }
  if (turn.kind === 'gone') throw new UnrecoverableError('the message or its conversation no longer exists');
  const replyId = randomUUID();
  const text = await engine.reply({ bot: turn.profile, history: turn.history, message: turn.message.text }, (delta) => {
    chat.messageChunk({ conversationId: data.conversationId, messageId: replyId, delta });
  });
  const { message } = await withTenant(kernel.db, data.tenantId, (trx) =>
    insertMessage(trx, kernel.keys.columnRing, { id: replyId, tenantId: data.tenantId, conversationId: data.conversationId, role: 'bot', text, replyTo: data.messageId }),
  );
  await forwardByEmail(kernel, data, message.messageId);
  chat.messageNew(toMessageEvent(message));
}

/**
 * In an e-mail conversation the stored reply also goes out by SMTP: an email-outbound job whose id is the reply's,
 * so a retried reply job (crashed after storing) enqueues it once.
 */
async function forwardByEmail(kernel: Kernel, data: JobData<'bot-reply'>, replyId: string): Promise<void> {
  const conversation = await withTenant(kernel.db, data.tenantId, (trx) => trx('conversations').where({ id: data.conversationId }).first<{ channel: string } | undefined>('channel'));
  if (conversation?.channel !== 'email') return;
  await kernel.queues.enqueue('email-outbound', 'send', { tenantId: data.tenantId, conversationId: data.conversationId, replyToMessageId: data.messageId, botMessageId: replyId }, { jobId: replyId });
}

export function startReplyWorker(kernel: Kernel): void {
  const engine = createReplyEngine(kernel.config);
  const chat = new ChatEmitter(kernel.redis);
  kernel.queues.worker(
    'bot-reply',
    async (data, job) => {
      try {
        await answerMessage(kernel, engine, chat, data);
      } catch (error) {
        const final = isLastAttempt(job, error) || (error instanceof LlmError && !error.retryable);
        log.warn('reply failed', { jobId: job.id, attempt: job.attemptsMade + 1, final, errorCode: error instanceof LlmError ? error.code : undefined });
        if (final) chat.messageError({ conversationId: data.conversationId, error: 'reply_failed' });
        if (error instanceof LlmError && !error.retryable) throw new UnrecoverableError(error.code);
        throw error;
      }
    },
    // A crashed worker's active jobs run again once their lock expires and a stalled-job check sees it.
    { concurrency: 20, lockDuration: kernel.config.jobLockMs, stalledInterval: kernel.config.jobLockMs },
  );
}
