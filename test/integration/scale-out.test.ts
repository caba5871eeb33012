import { expect } from 'chai';
import { Queue } from 'bullmq';
import { generateJwtPrivateKeyPem, workerFamilies, type Config, type WorkerFamily } from '../../shared/config/index.js';
import { verifyAudit } from '../../scripts/commands/audit.js';
import { createBot, restOk, signedInUser, signOutAll } from '../helpers/chat.js';
import { randomHexKey, testConfig } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startLlmServer, type LlmServer } from '../helpers/llm-server.js';
import { cleanupProcesses, freePort, isAlive, makeTempDir, startCli, startPrivateRedis, waitFor, waitForHttpOk, type EnvOverrides, type PrivateRedis, type RunningCli } from '../helpers/process.js';
import { startQdrantStandIn, type QdrantStandIn } from '../helpers/qdrant-server.js';
import { connectReconnectingClient, type ReconnectingClient } from '../helpers/reconnecting-client.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

/**
 * Scale-out on one machine, with real processes: two `botserver api` behind a balancer and two processes of every
 * worker family, all on one PostgreSQL, one Redis (a private one: the Socket.IO adapter's channels are
 * server-wide) and one data folder. 200 users (guests of a public bot, each in a conversation of their own) chat
 * through the balancer, so half of them hold a socket on each API. Midway one API process and one reply worker
 * are killed with SIGKILL. Then: every accepted message has exactly one reply, each conversation alternates
 * message and reply in order, every client has seen every message of its conversation (the clients of the killed
 * API reconnected to the other one and re-joined with `after`), no job failed, and the audit chain, written by two
 * audit workers meanwhile, verifies.
 */

const USERS = 200;
const MESSAGES_PER_USER = 3;
const TOTAL = USERS * MESSAGES_PER_USER;
/** Kill when this share of all replies has arrived. */
const KILL_AT = 0.4;
/** Lock and stalled-check period of the workers: a killed worker's jobs run again within about 2-3 of these. */
const JOB_LOCK_MS = 2000;
const QUEUE_PREFIX = '{scale}';

interface Process {
  name: string;
  cli: RunningCli;
}

interface UserRun {
  client: ReconnectingClient;
  /** messageId of each accepted message, in sending order */
  sent: string[];
  /** the bot message each one was answered with, as the client saw it */
  answers: string[];
}

describe('scale-out: 2 API processes, 2 processes per worker family, 200 users, one API and one reply worker killed', function () {
  this.timeout(240_000);
  let database: TestDatabase;
  let redis: PrivateRedis;
  let llm: LlmServer;
  let qdrant: QdrantStandIn;
  let env: EnvOverrides;
  let config: Config;
  let proxy: TcpProxy;
  let queue: Queue | undefined;
  let auditQueue: Queue | undefined;
  const apis: Array<Process & { port: number }> = [];
  const workers: Array<Process & { family: WorkerFamily }> = [];
  const runs: UserRun[] = [];

  before(async function () {
    this.timeout(240_000);
    const started = Date.now();
    [database, redis, llm, qdrant] = await Promise.all([createTestDatabase(), freePort().then(startPrivateRedis), startLlmServer(), startQdrantStandIn()]);
    env = {
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      BOTSERVER_DATA_DIR: makeTempDir('botserver-scale-data-'),
      BOTSERVER_JWT_SECRET: randomHexKey(),
      BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
      DATABASE_ENCRYPTION_KEY: randomHexKey(),
      BOTSERVER_JWT_PRIVATE_KEY: generateJwtPrivateKeyPem(),
      BOTSERVER_QUEUE_PREFIX: QUEUE_PREFIX,
      BOTSERVER_FEATURES: 'vectordb,email',
      BOTSERVER_JOB_LOCK_MS: String(JOB_LOCK_MS),
      QDRANT_URL: qdrant.url,
      LLM_BASE_URL: llm.url,
      LOG_LEVEL: 'error',
    };
    config = testConfig(Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined)));
    // A short streamed answer: replies take a moment, so the killed worker has jobs in flight.
    llm.setScript([{ kind: 'stream', deltas: ['Noted', '.'], delayMs: 40 }]);

    const starting: Array<Promise<void>> = [];
    for (const name of ['api-a', 'api-b']) {
      const port = await freePort();
      const cli = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
      apis.push({ name, cli, port });
      starting.push(waitForHttpOk(cli, `http://127.0.0.1:${port}/readyz`, 150_000));
    }
    for (const family of workerFamilies) {
      for (const index of [1, 2]) {
        const healthPort = await freePort();
        const cli = startCli(['worker', family], { ...env, BOTSERVER_HEALTH_PORT: String(healthPort) });
        workers.push({ name: `${family}-${index}`, family, cli });
        starting.push(waitForHttpOk(cli, `http://127.0.0.1:${healthPort}/readyz`, 150_000));
      }
    }
    await Promise.all(starting);
    process.stderr.write(`      (${apis.length + workers.length} processes ready in ${Math.round((Date.now() - started) / 1000)} s)\n`);
    proxy = await startTcpProxy(apis.map((api) => api.port));
    const connection = { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null };
    queue = new Queue('bot-reply', { connection, prefix: QUEUE_PREFIX });
    auditQueue = new Queue('audit', { connection, prefix: QUEUE_PREFIX });
  });

  after(async function () {
    this.timeout(60_000);
    for (const run of runs) run.client.close();
    await signOutAll();
    await Promise.allSettled([queue?.close(), auditQueue?.close(), proxy?.close()]);
    await Promise.allSettled([...apis, ...workers].map((process) => process.cli.stop('SIGTERM', 20_000)));
    await Promise.allSettled([llm?.stop(), qdrant?.stop()]);
    await cleanupProcesses();
    await database?.destroy();
  });

  it('every accepted message gets exactly one reply, in order, and every client sees every message of its conversation', async () => {
    const admin = await signedInUser({ url: proxy.url, config }, 'admin');
    const botId = await createBot(proxy.url, admin, { name: 'Scale bot', public: true, llm: {} });
    // 200 visitors, each with a conversation and a socket, spread over both APIs by the balancer.
    const guests = await Promise.all(Array.from({ length: USERS }, () => restOk('POST', `${proxy.url}/api/bots/${botId}/guest-token`, 200, { body: {} })));
    runs.push(
      ...(await Promise.all(
        guests.map(async (guest): Promise<UserRun> => ({ client: await connectReconnectingClient(proxy.url, String(guest.token), String(guest.conversationId)), sent: [], answers: [] })),
      )),
    );

    let answered = 0;
    let killedAt: number | undefined;
    const [apiA] = apis;
    const replyWorker = workers.find((worker) => worker.family === 'reply');
    if (apiA === undefined || replyWorker === undefined) throw new Error('processes missing');
    let killTime = 0;
    const killed = waitFor(() => answered >= TOTAL * KILL_AT, 120_000, 10).then(async () => {
      killedAt = answered;
      killTime = Date.now();
      apiA.cli.child.kill('SIGKILL');
      replyWorker.cli.child.kill('SIGKILL');
      await Promise.all([apiA.cli.exited, replyWorker.cli.exited]);
    });

    const started = Date.now();
    // Closed loop per user: the next message leaves when the reply to the previous one has arrived.
    await Promise.all(
      runs.map(async (run, user) => {
        const seen = new Set<string>();
        for (let index = 0; index < MESSAGES_PER_USER; index += 1) {
          run.sent.push(await run.client.send(`question ${index} of user ${user}`, `u${user}-m${index}`));
          const reply = await run.client.nextBotMessage(seen, 60_000);
          seen.add(reply.messageId);
          run.answers.push(reply.messageId);
          answered += 1;
        }
      }),
    );
    const wallMs = Date.now() - started;
    await killed;

    // Exactly one reply per accepted message, each conversation in order: message, its reply, message, its reply, ...
    type Row = { id: string; conversation_id: string; role: string; reply_to: string | null };
    const rows = await database.ownerDb('messages').whereIn('conversation_id', runs.map((run) => run.client.conversationId)).orderBy([{ column: 'created_at' }, { column: 'id' }]).select<Row[]>('id', 'conversation_id', 'role', 'reply_to');
    expect(rows).to.have.length(TOTAL * 2);
    const byConversation = new Map<string, Row[]>();
    for (const row of rows) byConversation.set(row.conversation_id, [...(byConversation.get(row.conversation_id) ?? []), row]);
    for (const run of runs) {
      const conversation = byConversation.get(run.client.conversationId) ?? [];
      const expected = run.sent.flatMap((messageId, index) => [
        { id: messageId, role: 'user', reply_to: null },
        { id: run.answers[index], role: 'bot', reply_to: messageId },
      ]);
      expect(conversation.map(({ id, role, reply_to }) => ({ id, role, reply_to })), run.client.conversationId).to.deep.equal(expected);
      // Nothing missed: every stored message of the conversation reached the client (live or by the re-join's replay).
      const received = new Set(run.client.messages.map((message) => message.messageId));
      expect(conversation.filter((row) => !received.has(row.id)), run.client.conversationId).to.deep.equal([]);
    }

    const reconnected = runs.filter((run) => run.client.disconnects.length > 0);
    expect(reconnected.length, 'clients of the killed API').to.be.greaterThan(0);
    for (const run of reconnected) expect(run.client.joins, 'a reconnected client re-joined').to.be.greaterThan(1);
    expect(await queue?.getFailedCount()).to.equal(0);
    // The killed worker had jobs in flight: BullMQ found them stalled and another worker ran them (their replies are above).
    const completed = (await queue?.getJobs(['completed'], 0, -1)) ?? [];
    expect(completed).to.have.length(TOTAL);
    const recovered = completed.filter((job) => job.stalledCounter > 0).length;
    expect(recovered, 'jobs recovered from the killed reply worker').to.be.greaterThan(0);
    // The survivors are all still up.
    for (const process of [...apis, ...workers].filter((candidate) => candidate !== apiA && candidate !== replyWorker)) {
      expect(process.cli.child.pid !== undefined && isAlive(process.cli.child.pid), `${process.name} alive\n${process.cli.stderr}`).to.equal(true);
    }

    // Two audit workers appended the messages' data.write events to one chain that verifies, none twice. (An API
    // records the event after the reply job and the broadcast; one killed between the two loses that message's event.)
    await waitFor(async () => {
      const counts = await auditQueue?.getJobCounts('waiting', 'active', 'delayed');
      return counts !== undefined && counts.waiting === 0 && counts.active === 0 && counts.delayed === 0;
    }, 60_000, 200);
    const [writes] = await database.ownerDb('audit_events').where({ type: 'data.write' }).whereLike('target', 'message:%').select<Array<{ events: string; targets: string }>>(
      database.ownerDb.raw('count(*) as events'),
      database.ownerDb.raw('count(distinct target) as targets'),
    );
    expect(Number(writes?.events)).to.equal(Number(writes?.targets));
    expect(Number(writes?.events)).to.be.within(TOTAL - reconnected.length, TOTAL);
    const verified = await verifyAudit(config);
    expect(verified.ok, JSON.stringify(verified)).to.equal(true);

    process.stderr.write(
      `      (${TOTAL} messages from ${USERS} users in ${(wallMs / 1000).toFixed(1)} s, ${Math.round(TOTAL / (wallMs / 1000))} replies/s; ` +
        `killed API A and reply worker 1 after ${killedAt ?? '?'} replies (${((killTime - started) / 1000).toFixed(1)} s); ${reconnected.length} clients reconnected, ${recovered} stalled jobs recovered)\n`,
    );
  });
});
