import { expect } from 'chai';
import type { Job } from 'bullmq';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { closeAllClients, connectClient, createBot, createConversation, listConversation, postMessage, setupChat, signOutAll, type ChatClient, type ChatSetup } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startLlmServer, type LlmServer } from '../helpers/llm-server.js';
import { waitFor } from '../helpers/process.js';

describe('chat failures, streaming and reconnect recovery', function () {
  this.timeout(90_000);
  let database: TestDatabase;
  let api: TestApi;
  let workers: RunningWorkers;
  let llm: LlmServer;
  let chat: ChatSetup;
  let llmBotId: string;
  let client: ChatClient;

  before(async function () {
    database = await createTestDatabase();
    llm = await startLlmServer();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, { LLM_BASE_URL: llm.url, LOG_LEVEL: 'error', BOTSERVER_RATE_LIMIT_PER_IP: '100000', BOTSERVER_RATE_LIMIT_PER_USER: '100000' });
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    chat = await setupChat(api, { name: 'Rule bot', rules: [{ match: 'hello', reply: 'Hi there' }] });
    llmBotId = await createBot(api.url, chat.admin, { name: 'LLM bot', llm: {} });
    client = await connectClient(api.url, { token: chat.admin.token });
  });

  after(async function () {
    closeAllClients();
    await signOutAll();
    await workers?.shutdown();
    if (api !== undefined) {
      for (const name of ['bot-reply', 'audit'] as const) await api.kernel.queues.queue(name).obliterate({ force: true });
      await api.stop();
    }
    await llm?.stop();
    await database?.destroy();
  });

  /** A fresh conversation with the LLM bot, joined by the client. */
  async function llmConversation(): Promise<string> {
    const conversationId = await createConversation(api.url, chat.admin, llmBotId);
    expect(await client.join(conversationId)).to.deep.equal({ ok: true });
    return conversationId;
  }

  async function failedJob(messageId: string): Promise<Job> {
    return waitFor(async () => (await api.kernel.queues.queue('bot-reply').getFailed()).find((job) => job.id === messageId), 10_000);
  }

  async function repliesTo(messageId: string): Promise<unknown[]> {
    return database.ownerDb('messages').where({ reply_to: messageId, role: 'bot' });
  }

  /** After an operator retries the failed job with a healthy endpoint, one reply is stored and emitted. */
  async function retryHealthy(job: Job, conversationId: string): Promise<void> {
    llm.setScript([{ kind: 'stream', deltas: ['Back ', 'again.'] }]);
    await job.retry();
    const reply = await client.waitForMessage((message) => message.conversationId === conversationId && message.role === 'bot', 20_000);
    expect(reply.text).to.equal('Back again.');
    const rows = await repliesTo(String(job.id));
    expect(rows).to.have.length(1);
    expect(await job.getState()).to.equal('completed');
  }

  it('an endpoint answering 400: message:error, the job fails at once, and an operator retry answers it', async () => {
    llm.setScript([{ kind: 'status', status: 400, error: { message: 'bad model', type: 'invalid_request_error', code: 'model_not_found' } }]);
    const conversationId = await llmConversation();
    const sent = await client.send(conversationId, 'Tell me something', 'fail-400');
    if (!sent.ok || sent.messageId === undefined) throw new Error(JSON.stringify(sent));
    const error = await client.waitForError((event) => event.conversationId === conversationId);
    expect(error).to.deep.equal({ conversationId, error: 'reply_failed' });
    const job = await failedJob(sent.messageId);
    expect(job.attemptsMade).to.equal(1); // not retried: a 400 will not get better by itself
    expect(llm.requests).to.have.length(1);
    expect(await repliesTo(sent.messageId)).to.have.length(0);
    expect(client.messages.filter((message) => message.conversationId === conversationId && message.role === 'bot')).to.have.length(0);
    await retryHealthy(job, conversationId);
  });

  it('an endpoint answering 500 always: retried, then message:error and a failed job, which an operator retry answers', async () => {
    llm.setScript([{ kind: 'status', status: 500, retryAfterMs: '0' }]);
    const conversationId = await llmConversation();
    const messageId = await postMessage(api.url, chat.admin.token, conversationId, 'Tell me more');
    const error = await client.waitForError((event) => event.conversationId === conversationId, 60_000);
    expect(error).to.deep.equal({ conversationId, error: 'reply_failed' });
    const job = await failedJob(messageId);
    expect(job.attemptsMade).to.equal(job.opts.attempts);
    expect(job.attemptsMade).to.be.greaterThan(1);
    // Only the last attempt tells the client.
    expect(client.errors.filter((event) => event.conversationId === conversationId)).to.have.length(1);
    expect(await repliesTo(messageId)).to.have.length(0);
    await retryHealthy(job, conversationId);
  });

  it('streams: message:chunk events in order, concatenating to the final message:new text, with the same messageId', async () => {
    const deltas = ['The answer', ' is', ' forty-two.'];
    llm.setScript([{ kind: 'stream', deltas, delayMs: 30 }]);
    const conversationId = await llmConversation();
    const sent = await client.send(conversationId, 'What is the answer?', 'stream-1');
    expect(sent.ok).to.equal(true);
    const reply = await client.waitForMessage((message) => message.conversationId === conversationId && message.role === 'bot');
    const chunks = client.chunks.filter((chunk) => chunk.conversationId === conversationId);
    expect(chunks.map((chunk) => chunk.delta)).to.deep.equal(deltas);
    expect(new Set(chunks.map((chunk) => chunk.messageId))).to.deep.equal(new Set([reply.messageId]));
    expect(reply.text).to.equal(deltas.join(''));
    const history = await listConversation(api.url, chat.admin.token, conversationId);
    expect(history.at(-1)).to.include({ messageId: reply.messageId, role: 'bot', text: 'The answer is forty-two.' });
  });

  it('reconnect: a client that was away joins with `after` and receives what it missed (plus, at most, messages it had)', async () => {
    const conversationId = chat.conversationId;
    const first = await connectClient(api.url, { token: chat.admin.token });
    expect(await first.join(conversationId)).to.deep.equal({ ok: true });
    expect((await first.send(conversationId, 'hello', 'rc-1')).ok).to.equal(true);
    const seen = await first.waitForMessage((message) => message.conversationId === conversationId && message.role === 'bot');
    first.close();

    // Meanwhile the conversation goes on without it (another device of the same user, over REST).
    const missedId = await postMessage(api.url, chat.admin.token, conversationId, 'hello again');
    const missedReply = await waitFor(async () => {
      const rows = (await repliesTo(missedId)) as Array<{ id: string }>;
      return rows[0];
    });
    // The job completes after its reply was published: from then on nothing of it is still on the way live.
    await waitFor(async () => (await api.kernel.queues.queue('bot-reply').getJob(missedId))?.isCompleted());

    const back = await connectClient(api.url, { token: chat.admin.token });
    expect(await back.join(conversationId, seen.messageId)).to.deep.equal({ ok: true });
    await back.waitForMessage((message) => message.messageId === missedReply.id);
    const missed = back.messages.filter((message) => !first.messages.some((had) => had.messageId === message.messageId));
    expect(missed.map(({ messageId, role, text }) => ({ messageId, role, text }))).to.deep.equal([
      { messageId: missedId, role: 'user', text: 'hello again' },
      { messageId: missedReply.id, role: 'bot', text: 'Hi there' },
    ]);
    // The replay starts a little before the last message seen (commit-order safety); never the one it named.
    expect(back.messages.map((message) => message.messageId)).to.not.include(seen.messageId);
    // Positive control: without `after` nothing is replayed.
    const fresh = await connectClient(api.url, { token: chat.admin.token });
    expect(await fresh.join(conversationId)).to.deep.equal({ ok: true });
    expect(fresh.messages).to.deep.equal([]);
  });
});
