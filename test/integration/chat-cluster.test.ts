import { expect } from 'chai';
import { Queue } from 'bullmq';
import { generateJwtPrivateKeyPem, type Config } from '../../shared/config/index.js';
import { closeAllClients, connectClient, createBot, createConversation, postMessage, signedInUser, signOutAll, type ChatClient, type SignedInUser } from '../helpers/chat.js';
import { randomHexKey, testConfig } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startLlmServer, type LlmServer } from '../helpers/llm-server.js';
import {
  cleanupProcesses, freePort, makeTempDir, startCli, startPrivateRedis, waitFor, waitForHttpOk, type EnvOverrides, type PrivateRedis, type RunningCli,
} from '../helpers/process.js';

/**
 * Two `botserver api` processes and a `botserver worker reply` process, as separate OS processes sharing keys,
 * PostgreSQL and Redis. Redis is a private redis-server: BullMQ child processes always use the `bull` prefix, and
 * the Socket.IO adapter's pub/sub channels are server-wide (not per database number), so a private server is the
 * only full isolation from other tests.
 */

const MESSAGES = 30;
/** Lock and stalled-check period of the worker: a killed worker's jobs are re-run within about 2-3 of these. */
const JOB_LOCK_MS = 2000;

describe('chat cluster: two API processes, a reply worker, and a worker crash', function () {
  this.timeout(90_000);
  let database: TestDatabase;
  let redis: PrivateRedis;
  let llm: LlmServer;
  let env: EnvOverrides;
  let config: Config;
  let apiA: { cli: RunningCli; url: string };
  let apiB: { cli: RunningCli; url: string };
  let worker: RunningCli;
  let queue: Queue | undefined;
  let admin: SignedInUser;
  let operator: SignedInUser;
  let botId: string;
  let conversationId: string;
  let onA: ChatClient;
  let onB: ChatClient;

  async function startApi(): Promise<{ cli: RunningCli; url: string }> {
    const port = await freePort();
    const cli = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
    const url = `http://127.0.0.1:${port}`;
    await waitForHttpOk(cli, `${url}/readyz`, 45_000);
    return { cli, url };
  }

  async function startWorker(): Promise<RunningCli> {
    const cli = startCli(['worker', 'reply'], { ...env, LOG_LEVEL: 'info', BOTSERVER_JOB_LOCK_MS: String(JOB_LOCK_MS) });
    await waitFor(() => {
      if (cli.child.exitCode !== null || cli.child.signalCode !== null) throw new Error(`the worker exited: ${cli.stderr}`);
      return cli.stdout.includes('"workers started"');
    }, 45_000);
    return cli;
  }

  before(async function () {
    this.timeout(120_000);
    [database, redis, llm] = await Promise.all([createTestDatabase(), freePort().then(startPrivateRedis), startLlmServer()]);
    env = {
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      BOTSERVER_DATA_DIR: makeTempDir('botserver-cluster-data-'),
      BOTSERVER_JWT_SECRET: randomHexKey(),
      BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
      DATABASE_ENCRYPTION_KEY: randomHexKey(),
      BOTSERVER_JWT_PRIVATE_KEY: generateJwtPrivateKeyPem(),
      BOTSERVER_RATE_LIMIT_PER_IP: '100000',
      BOTSERVER_RATE_LIMIT_PER_USER: '100000',
      LLM_BASE_URL: llm.url,
    };
    // The same keys in this process, to create accounts the processes can read.
    config = testConfig(Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined)));
    [apiA, apiB, worker] = await Promise.all([startApi(), startApi(), startWorker()]);
    queue = new Queue('bot-reply', { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null }, prefix: 'bull' });

    admin = await signedInUser({ url: apiA.url, config }, 'admin');
    operator = await signedInUser({ url: apiB.url, config }, 'operator');
    // Rules first (the cluster check), the slow LLM for everything else (the crash check).
    botId = await createBot(apiA.url, admin, { name: 'Cluster bot', rules: [{ match: 'ping', reply: 'pong' }], llm: {} });
    conversationId = await createConversation(apiA.url, admin, botId);
    onA = await connectClient(apiA.url, { token: admin.token });
    onB = await connectClient(apiB.url, { token: operator.token });
    expect(await onA.join(conversationId)).to.deep.equal({ ok: true });
    expect(await onB.join(conversationId)).to.deep.equal({ ok: true });
  });

  after(async function () {
    this.timeout(60_000);
    closeAllClients();
    await signOutAll();
    await queue?.close();
    await Promise.allSettled([apiA?.cli.stop(), apiB?.cli.stop(), worker?.stop()]);
    await llm?.stop();
    await cleanupProcesses(); // also ends the private redis-server: nothing of this test stays in Redis
    await database?.destroy();
  });

  it('a message sent on API A is answered by the worker process, and the reply reaches clients on A and on B', async () => {
    const sent = await onA.send(conversationId, 'ping', 'cluster-1');
    if (!sent.ok || sent.messageId === undefined) throw new Error(JSON.stringify(sent));
    const isReply = (message: { conversationId: string; role: string }): boolean => message.conversationId === conversationId && message.role === 'bot';
    const [onAReply, onBReply] = await Promise.all([onA.waitForMessage(isReply), onB.waitForMessage(isReply)]);
    expect(onAReply.text).to.equal('pong');
    expect(onBReply).to.deep.equal(onAReply);
    // API A's own event (the user message) crossed to B through the Redis adapter as well.
    const userOnB = await onB.waitForMessage((message) => message.messageId === sent.messageId);
    expect(userOnB).to.include({ role: 'user', text: 'ping' });
    const rows = await database.ownerDb('messages').where({ reply_to: sent.messageId });
    expect(rows.map((row: { id: string }) => row.id)).to.deep.equal([onAReply.messageId]);
  });

  it('after kill -9 of the reply worker with jobs in flight and a restart, every accepted message has exactly one reply', async () => {
    if (queue === undefined) throw new Error('no queue');
    llm.setScript([{ kind: 'stream', deltas: ['Slow', ' but', ' ', 'sure', ' reply', '.'], delayMs: 250 }]);
    const accepted = await Promise.all(Array.from({ length: MESSAGES }, (_, index) => postMessage(apiA.url, admin.token, conversationId, `question ${index}`)));
    expect(new Set(accepted).size).to.equal(MESSAGES);

    // Kill while the worker is in the middle of answering: streams started, not all replies stored.
    await waitFor(() => llm.requests.length >= 10, 20_000, 20);
    worker.child.kill('SIGKILL');
    expect((await worker.exited).signal).to.equal('SIGKILL');
    const repliesAtKill = await countReplies(accepted);
    expect(repliesAtKill).to.be.lessThan(MESSAGES);
    const stranded = await queue.getActiveCount();
    expect(stranded, 'jobs left active by the killed worker').to.be.greaterThan(0);

    worker = await startWorker();
    type ReplyRow = { id: string; reply_to: string; role: string };
    const replyIds = await waitFor<ReplyRow[]>(async () => {
      const rows = await database.ownerDb('messages').whereIn('reply_to', accepted).select<ReplyRow[]>('id', 'reply_to', 'role');
      return rows.length >= MESSAGES ? rows : false;
    }, 60_000, 250);

    // Exactly one reply each, none missing, all by the bot.
    const perMessage = new Map<string, number>();
    for (const row of replyIds) perMessage.set(row.reply_to, (perMessage.get(row.reply_to) ?? 0) + 1);
    expect([...perMessage.keys()].sort()).to.deep.equal([...accepted].sort());
    expect([...perMessage.values()].every((count) => count === 1)).to.equal(true);
    expect(replyIds.every((row) => row.role === 'bot')).to.equal(true);
    expect(await queue.getFailedCount()).to.equal(0);
    // Every stored reply was announced to the room, including those of jobs the crash interrupted.
    const announced = await waitFor(() => {
      const seen = new Set(onB.messages.map((message) => message.messageId));
      return replyIds.every((row) => seen.has(row.id)) ? seen : false;
    }, 20_000);
    expect(announced.size).to.be.greaterThan(MESSAGES);
  });

  async function countReplies(ids: string[]): Promise<number> {
    const [row] = await database.ownerDb('messages').whereIn('reply_to', ids).count<Array<{ count: string }>>('* as count');
    return Number(row?.count ?? 0);
  }
});
