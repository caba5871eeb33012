import { randomUUID } from 'node:crypto';
import { UnrecoverableError, type Job } from 'bullmq';
import { createReplyEngine, findRule, LlmError, type BotProfile, type ChatTurn, type ReplyEngine } from '../adapters/llm/index.js';
import { ChatEmitter, insertMessage, listMessages, openMessageRow, storeMessage, toMessageEvent, type ConversationStatus, type MessageRow, type MessageSource, type StoredMessage } from '../shared/chat/index.js';
import { lazyEmbedder } from '../adapters/embeddings/index.js';
import { createKnowledgeIndex } from '../adapters/qdrant/index.js';
import { isUuid, queryPrepared, withTenant } from '../shared/db/index.js';
import { BotProfileCache, NO_VERSION } from './botProfiles.js';
import { documentTitles } from '../shared/knowledge/documents.js';
import { retrievePassages, titledPassages } from '../shared/knowledge/retrieval.js';
import { groundTurn, type GroundingPassage } from './grounding.js';
import type { Kernel } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import type { JobData } from '../shared/queue/index.js';

const HISTORY_TURNS = 20;

/** Reply jobs one worker process holds at once. */
export const REPLY_CONCURRENCY = 20;

interface ConversationRow {
  bot_id: string;
  channel: 'web' | 'email';
  status: ConversationStatus;
}

/** The row of the turn statement: the conversation, its bot's version (and profile, when not held), the message, any reply. */
interface TurnRow extends ConversationRow {
  bot_live: boolean;
  bot_version: string;
  bot_profile: BotProfile | null;
  has_knowledge: boolean;
  [column: `m_${string}` | `r_${string}`]: unknown;
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
  | { kind: 'open'; conversation: ConversationRow; message: StoredMessage; profile: BotProfile; hasKnowledge: boolean };

/** A message row out of the turn row's `m_` or `r_` columns; undefined when the join found none. */
function messageRowOf(row: TurnRow, alias: 'm' | 'r'): MessageRow | undefined {
  if (row[`${alias}_id`] === null) return undefined;
  const column = (name: keyof MessageRow): unknown => row[`${alias}_${name}`];
  return {
    id: String(column('id')),
    conversation_id: String(column('conversation_id')),
    role: column('role') as MessageRow['role'],
    text_ciphertext: String(column('text_ciphertext')),
    created_at: column('created_at') as Date,
    reply_to: (column('reply_to') as string | null) ?? null,
    sources_ciphertext: (column('sources_ciphertext') as string | null) ?? null,
  };
}

/**
 * Loads a turn in one round trip: `app_reply_turn` (migration 015), a prepared statement that sets the tenant and
 * reads, under RLS, the conversation with its status, the bot's version (its profile only when this worker does not
 * hold that version), the message, and a reply already stored.
 */
async function loadTurn(kernel: Kernel, profiles: BotProfileCache, data: JobData<'bot-reply'>, knowledge: boolean, forceProfile = false): Promise<Turn> {
  const ring = kernel.keys.columnRing;
  if (!isUuid(data.tenantId)) throw new UnrecoverableError('the job names no tenant');
  const heldVersion = data.botId === undefined || forceProfile ? NO_VERSION : profiles.versionOf(data.botId);
  const [row] = await queryPrepared<TurnRow>(kernel.db, 'botserver.app_reply_turn', 'SELECT * FROM app_reply_turn(?, ?, ?, ?, ?, ?)', [
    data.tenantId,
    data.conversationId,
    data.messageId,
    data.botId ?? null,
    heldVersion,
    knowledge,
  ]);
  if (row === undefined) return { kind: 'gone' };
  const conversation: ConversationRow = { bot_id: row.bot_id, channel: row.channel, status: row.status };
  const reply = messageRowOf(row, 'r');
  if (reply !== undefined) return { kind: 'answered', reply: openMessageRow(ring, reply), channel: row.channel };
  if (row.status !== 'bot') return { kind: 'with-person' };
  const message = messageRowOf(row, 'm');
  if (message === undefined || !row.bot_live) return { kind: 'gone' };
  const profile = profiles.profileAt(row.bot_id, row.bot_version, row.bot_profile);
  // The copy this worker held went meanwhile (the cache was full and cleared): read the turn again with the profile.
  if (profile === undefined) return loadTurn(kernel, profiles, data, knowledge, true);
  return { kind: 'open', conversation, message: openMessageRow(ring, message), profile, hasKnowledge: row.has_knowledge };
}

/** The turns before the message, oldest first, for an LLM (a rule bot needs none). An operator's words are the assistant's side. */
async function loadHistory(kernel: Kernel, data: JobData<'bot-reply'>, message: StoredMessage): Promise<ChatTurn[]> {
  const history = await withTenant(kernel.db, data.tenantId, (trx) => listMessages(trx, kernel.keys.columnRing, data.conversationId, { before: message, limit: HISTORY_TURNS }));
  return history.map(({ role, text }): ChatTurn => ({ role: role === 'user' ? 'user' : 'bot', text }));
}

/**
 * The reply family: answers one accepted message. The reply is stored with `reply_to` = the message (unique), so
 * a retried or re-delivered job never answers twice; it only announces the reply already stored. A matching rule
 * answers first; one marked `handoff` also puts the conversation in the waiting list for a person.
 */
export async function answerMessage(kernel: Kernel, engine: ReplyEngine, chat: ChatEmitter, profiles: BotProfileCache, data: JobData<'bot-reply'>, knowledge?: Retrieval): Promise<void> {
  const turn = await loadTurn(kernel, profiles, data, knowledge !== undefined);
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
    if (grounded.kind === 'passage') {
      text = grounded.text;
    } else {
      const history = grounded.profile.llm === null ? [] : await loadHistory(kernel, data, turn.message);
      text = await engine.reply({ bot: grounded.profile, history, message: turn.message.text }, (delta) => {
        chat.messageChunk({ conversationId: data.conversationId, messageId: replyId, delta });
      });
    }
  }
  const reply = { id: replyId, tenantId: data.tenantId, conversationId: data.conversationId, role: 'bot' as const, text, replyTo: data.messageId, sources };
  const { message, handedOver } =
    rule?.handoff === true
      ? await withTenant(kernel.db, data.tenantId, async (trx) => {
          const stored = await insertMessage(trx, kernel.keys.columnRing, reply);
          if (!stored.created) return { message: stored.message, handedOver: false };
          const updated = await trx('conversations').where({ id: data.conversationId, status: 'bot' }).update({ status: 'waiting' });
          return { message: stored.message, handedOver: updated > 0 };
        })
      : { message: (await storeMessage(kernel.db, kernel.keys.columnRing, reply)).message, handedOver: false };
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
  const profiles = new BotProfileCache();
  kernel.queues.worker(
    'bot-reply',
    async (data, job) => {
      try {
        await answerMessage(kernel, engine, chat, profiles, data, knowledge);
      } catch (error) {
        const final = isLastAttempt(job, error) || (error instanceof LlmError && !error.retryable);
        log.warn('reply failed', { jobId: job.id, attempt: job.attemptsMade + 1, final, errorCode: error instanceof LlmError ? error.code : undefined });
        if (final) chat.messageError({ conversationId: data.conversationId, error: 'reply_failed' });
        if (error instanceof LlmError && !error.retryable) throw new UnrecoverableError(error.code);
        throw error;
      }
    },
    { concurrency: REPLY_CONCURRENCY },
  );
}
