import { randomUUID } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import { createReplyEngine, findRule, LlmError, type BotProfile, type ChatTurn, type BotRule, type LlmSettings, type ReplyEngine } from '../adapters/llm/index.js';
import { ChatEmitter, findMessage, findReplyTo, insertMessage, listMessages, toMessageEvent, type ConversationStatus, type MessageSource, type StoredMessage } from '../shared/chat/index.js';
import { lazyEmbedder } from '../adapters/embeddings/index.js';
import { createKnowledgeIndex } from '../adapters/qdrant/index.js';
import { withTenant } from '../shared/db/index.js';
import { documentTitles } from '../shared/knowledge/documents.js';
import { retrievePassages, titledPassages } from '../shared/knowledge/retrieval.js';
import { groundTurn, type GroundingPassage } from './grounding.js';
import type { Kernel } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import type { JobData } from '../shared/queue/index.js';

const HISTORY_TURNS = 20;

interface BotRow {
  name: string;
  rules: BotRule[];
  llm: LlmSettings | null;
}

interface ConversationRow {
  bot_id: string;
  channel: 'web' | 'email';
  status: ConversationStatus;
}

function isLastAttempt(job: Job, error: unknown): boolean {
  if (error instanceof UnrecoverableError) return true;
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

type Turn =
  | { kind: 'answered'; reply: StoredMessage; channel: ConversationRow['channel'] }
  | { kind: 'gone' }
  /** The visitor asked for a person, or an operator took over: the bot stays silent. */
  | { kind: 'with-person' }
  | { kind: 'open'; conversation: ConversationRow; message: StoredMessage; profile: BotProfile; history: ChatTurn[]; hasKnowledge: boolean };

/** Loads the message, its conversation and bot, and recent history, all in the job's tenant. */
async function loadTurn(kernel: Kernel, data: JobData<'bot-reply'>, knowledge: boolean): Promise<Turn> {
  return withTenant(kernel.db, data.tenantId, async (trx) => {
    const ring = kernel.keys.columnRing;
    const conversation = await trx('conversations').where({ id: data.conversationId }).first<ConversationRow | undefined>('bot_id', 'channel', 'status');
    if (conversation === undefined) return { kind: 'gone' };
    const existing = await findReplyTo(trx, ring, data.messageId);
    if (existing !== undefined) return { kind: 'answered', reply: existing, channel: conversation.channel };
    if (conversation.status !== 'bot') return { kind: 'with-person' };
    const message = await findMessage(trx, ring, data.messageId);
    if (message === undefined || message.conversationId !== data.conversationId) return { kind: 'gone' };
    const bot = await trx('bots').where({ id: conversation.bot_id }).whereNull('deleted_at').first<BotRow | undefined>('name', 'rules', 'llm');
    if (bot === undefined) return { kind: 'gone' };
    const history = await listMessages(trx, ring, data.conversationId, { before: message, limit: HISTORY_TURNS });
    const profile: BotProfile = { name: bot.name, rules: bot.rules, llm: bot.llm };
    const hasKnowledge = knowledge && (await trx('knowledge_documents').where({ bot_id: conversation.bot_id, status: 'indexed' }).first('id')) !== undefined;
    // An operator's words are the assistant's side of the conversation for an LLM.
    const turns = history.map(({ role, text }): ChatTurn => ({ role: role === 'user' ? 'user' : 'bot', text }));
    return { kind: 'open', conversation, message, profile, history: turns, hasKnowledge };
  });
}

/**
 * The reply family: answers one accepted message. The reply is stored with `reply_to` = the message (unique), so
 * a retried or re-delivered job never answers twice; it only announces the reply already stored. A matching rule
 * answers first; one marked `handoff` also puts the conversation in the waiting list for a person.
 */
export async function answerMessage(kernel: Kernel, engine: ReplyEngine, chat: ChatEmitter, data: JobData<'bot-reply'>, knowledge?: Retrieval): Promise<void> {
  const turn = await loadTurn(kernel, data, knowledge !== undefined);
  if (turn.kind === 'answered') {
    await forwardByEmail(kernel, data, turn.channel, turn.reply.messageId);
    chat.messageNew(toMessageEvent(turn.reply));
    return;
  }
  if (turn.kind === 'with-person') return;
  if (turn.kind === 'gone') throw new UnrecoverableError('the message or its conversation no longer exists');
  const replyId = randomUUID();
  const rule = findRule(turn.profile.rules, turn.message.text)?.rule;
  let text: string;
  let sources: MessageSource[] = [];
  if (rule !== undefined) {
    text = rule.reply;
  } else {
    const passages = turn.hasKnowledge && knowledge !== undefined ? await knowledge(data.tenantId, turn.conversation.bot_id, turn.message.text) : [];
    const grounded = groundTurn(kernel.config, turn.profile, turn.message.text, passages);
    sources = grounded.sources;
    text =
      grounded.kind === 'passage'
        ? grounded.text
        : await engine.reply({ bot: grounded.profile, history: turn.history, message: turn.message.text }, (delta) => {
            chat.messageChunk({ conversationId: data.conversationId, messageId: replyId, delta });
          });
  }
  const { message, handedOver } = await withTenant(kernel.db, data.tenantId, async (trx) => {
    const stored = await insertMessage(trx, kernel.keys.columnRing, { id: replyId, tenantId: data.tenantId, conversationId: data.conversationId, role: 'bot', text, replyTo: data.messageId, sources });
    if (rule?.handoff !== true || !stored.created) return { message: stored.message, handedOver: false };
    const updated = await trx('conversations').where({ id: data.conversationId, status: 'bot' }).update({ status: 'waiting' });
    return { message: stored.message, handedOver: updated > 0 };
  });
  await forwardByEmail(kernel, data, turn.conversation.channel, message.messageId);
  chat.messageNew(toMessageEvent(message));
  if (handedOver) chat.conversationStatus(data.tenantId, { conversationId: data.conversationId, status: 'waiting', operatorId: null });
}

/** Passages for a message from the bot's documents, best first; empty when retrieval fails (the bot still answers). */
export type Retrieval = (tenantId: string, botId: string, text: string) => Promise<GroundingPassage[]>;

const PASSAGES_PER_ANSWER = 4;

function knowledgeRetrieval(kernel: Kernel): Retrieval | undefined {
  const qdrant = kernel.config.qdrant;
  if (!kernel.config.features.has('vectordb') || qdrant === undefined) return undefined;
  const index = createKnowledgeIndex({ url: qdrant.url, apiKey: qdrant.apiKey });
  const embedder = lazyEmbedder(kernel.config);
  return async (tenantId, botId, text) => {
    try {
      const passages = await retrievePassages(await embedder(), index, kernel.keys.columnRing, { tenantId, botId, text, limit: PASSAGES_PER_ANSWER });
      const titles = await withTenant(kernel.db, tenantId, (trx) => documentTitles(trx, kernel.keys.columnRing, passages.map((passage) => passage.documentId)));
      return titledPassages(passages, titles);
    } catch (error) {
      log.warn('knowledge retrieval failed; answering without it', { error: error instanceof Error ? error.message : String(error) });
      return [];
    }
  };
}

/**
 * In an e-mail conversation the stored reply also goes out by SMTP: an email-outbound job whose id is the reply's,
 * so a retried reply job (crashed after storing) enqueues it once.
 */
async function forwardByEmail(kernel: Kernel, data: JobData<'bot-reply'>, channel: ConversationRow['channel'], replyId: string): Promise<void> {
  if (channel !== 'email') return;
  await kernel.queues.enqueue('email-outbound', 'send', { tenantId: data.tenantId, conversationId: data.conversationId, replyToMessageId: data.messageId, botMessageId: replyId }, { jobId: replyId });
}

export function startReplyWorker(kernel: Kernel): void {
  const engine = createReplyEngine(kernel.config);
  const chat = new ChatEmitter(kernel.redis);
  const knowledge = knowledgeRetrieval(kernel);
  kernel.queues.worker(
    'bot-reply',
    async (data, job) => {
      try {
        await answerMessage(kernel, engine, chat, data, knowledge);
      } catch (error) {
        const final = isLastAttempt(job, error) || (error instanceof LlmError && !error.retryable);
        log.warn('reply failed', { jobId: job.id, attempt: job.attemptsMade + 1, final, errorCode: error instanceof LlmError ? error.code : undefined });
        if (final) chat.messageError({ conversationId: data.conversationId, error: 'reply_failed' });
        if (error instanceof LlmError && !error.retryable) throw new UnrecoverableError(error.code);
        throw error;
      }
    },
    { concurrency: 20 },
  );
}
