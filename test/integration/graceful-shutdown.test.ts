import { expect } from 'chai';
import { Queue } from 'bullmq';
import { generateJwtPrivateKeyPem, type Config } from '../../shared/config/index.js';
import { closeAllClients, createBot, listConversation, postMessage, restOk, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { randomHexKey, testConfig } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startLlmServer, type LlmServer } from '../helpers/llm-server.js';
import { cleanupProcesses, freePort, makeTempDir, startCli, startPrivateRedis, waitFor, waitForHttpOk, type EnvOverrides, type PrivateRedis, type RunningCli } from '../helpers/process.js';
import { connectReconnectingClient, type ReconnectingClient } from '../helpers/reconnecting-client.js';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js';

/**
 * SIGTERM, as an orchestrator sends it before replacing a process: an API process closes its sockets so that
 * clients reconnect (here through a small balancer, to the other API process), finishes the socket events it has
 * received, and exits 0; a worker takes no new job, finishes the one it runs (readiness 503 meanwhile), and exits 0.
 */

const QUEUE_PREFIX = '{graceful}';

describe('graceful shutdown on SIGTERM', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let redis: PrivateRedis;
  let llm: LlmServer;
  let env: EnvOverrides;
  let config: Config;
  let proxy: TcpProxy;
  let apiA: { cli: RunningCli; url: string; port: number };
  let apiB: { cli: RunningCli; url: string; port: number };
  let worker: RunningCli;
  let workerHealth: string;
  let queue: Queue;
  let admin: SignedInUser;
  let botId: string;

  async function startApi(): Promise<{ cli: RunningCli; url: string; port: number }> {
    const port = await freePort();
    const cli = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
    const url = `http://127.0.0.1:${port}`;
    await waitForHttpOk(cli, `${url}/readyz`, 60_000);
    return { cli, url, port };
  }

  before(async function () {
    this.timeout(180_000);
    [database, redis, llm] = await Promise.all([createTestDatabase(), freePort().then(startPrivateRedis), startLlmServer()]);
    env = {
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      BOTSERVER_DATA_DIR: makeTempDir('botserver-graceful-data-'),
      BOTSERVER_JWT_SECRET: randomHexKey(),
      BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
      DATABASE_ENCRYPTION_KEY: randomHexKey(),
      BOTSERVER_JWT_PRIVATE_KEY: generateJwtPrivateKeyPem(),
      BOTSERVER_QUEUE_PREFIX: QUEUE_PREFIX,
      LLM_BASE_URL: llm.url,
    };
    config = testConfig(Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined)));
    const healthPort = await freePort();
    workerHealth = `http://127.0.0.1:${healthPort}`;
    worker = startCli(['worker', 'reply'], { ...env, BOTSERVER_HEALTH_PORT: String(healthPort) });
    [apiA, apiB] = await Promise.all([startApi(), startApi(), waitForHttpOk(worker, `${workerHealth}/readyz`, 60_000)]);
    proxy = await startTcpProxy([apiA.port]);
    queue = new Queue('bot-reply', { connection: { host: '127.0.0.1', port: redis.port, maxRetriesPerRequest: null }, prefix: QUEUE_PREFIX });
    admin = await signedInUser({ url: apiB.url, config }, 'admin');
    botId = await createBot(apiB.url, admin, { name: 'Drain bot', public: true, rules: [{ match: 'ping', reply: 'pong' }], llm: {} });
  });

  after(async function () {
    this.timeout(60_000);
    closeAllClients();
    await signOutAll();
    await queue?.close();
    await proxy?.close();
    await Promise.allSettled([apiA?.cli.stop(), apiB?.cli.stop(), worker?.stop()]);
    await llm?.stop();
    await cleanupProcesses();
    await database?.destroy();
  });

  it('API: clients get a transport close and reconnect to the other process, miss nothing, and every message sent around the stop is answered once', async () => {
    const guest = await restOk('POST', `${apiB.url}/api/bots/${botId}/guest-token`, 200, { body: {} });
    const conversationId = String(guest.conversationId);
    const token = String(guest.token);
    const client: ReconnectingClient = await connectReconnectingClient(proxy.url, token, conversationId);
    try {
      const first = await client.send('ping 1', 'drain-1');
      await client.nextBotMessage(new Set(), 20_000);

      // Events in flight when the signal arrives: each is either handled to the end (and acked) or not acked at all
      // and sent again after the reconnect; either way it must end up stored and answered exactly once.
      const burst = ['drain-2', 'drain-3', 'drain-4', 'drain-5'].map((id) => client.send(`ping ${id}`, id));
      proxy.setBackends([]); // the balancer stops sending new connections to A (readiness gone), none to B yet
      expect(await apiA.cli.stop('SIGTERM', 30_000), `API A's exit code\n${apiA.cli.stderr}`).to.equal(0);
      expect(apiA.cli.stdout + apiA.cli.stderr).to.not.match(/unhandled/i);
      await waitFor(() => client.disconnects.length > 0, 10_000);
      // A transport close (not "io server disconnect"): the client reconnects by itself.
      expect(client.disconnects).to.deep.equal(['transport close']);

      // While the client is away, another participant's message and the bot's reply are stored (through B).
      const missedId = await postMessage(apiB.url, token, conversationId, 'ping while away', 'drain-away');
      await waitFor(async () => (await database.ownerDb('messages').where({ reply_to: missedId }).first('id')) !== undefined, 20_000);

      proxy.setBackends([apiB.port]);
      const accepted = [first, ...(await Promise.all(burst)), missedId];
      await waitFor(() => client.joins >= 2, 20_000);

      // Every message of the conversation reached the client exactly once, the missed ones by the re-join's replay.
      const stored = await waitFor(async () => {
        const list = await listConversation(apiB.url, token, conversationId);
        return list.filter((message) => message.role === 'bot').length >= accepted.length ? list : false;
      }, 30_000);
      await waitFor(() => stored.every((message) => client.messages.some((seen) => seen.messageId === message.messageId)), 20_000);
      expect(client.messages.map((message) => message.messageId).sort()).to.deep.equal(stored.map((message) => message.messageId).sort());
      // One user message per clientMessageId, one reply per user message.
      expect(stored.filter((message) => message.role === 'user').map((message) => message.messageId).sort()).to.deep.equal([...new Set(accepted)].sort());
      const rows = await database.ownerDb('messages').where({ conversation_id: conversationId, role: 'bot' }).select<Array<{ reply_to: string }>>('reply_to');
      expect(rows.map((row) => row.reply_to).sort()).to.deep.equal([...new Set(accepted)].sort());
    } finally {
      client.close();
    }
  });

  it('worker: readiness turns 503, the running job finishes (its reply stored and announced), then exit 0', async () => {
    llm.setScript([{ kind: 'stream', deltas: ['Take', ' your', ' time', ',', ' the', ' answer', ' comes', '.'], delayMs: 400 }]);
    const guest = await restOk('POST', `${apiB.url}/api/bots/${botId}/guest-token`, 200, { body: {} });
    const conversationId = String(guest.conversationId);
    const client = await connectReconnectingClient(apiB.url, String(guest.token), conversationId);
    try {
      const messageId = await client.send('a question for the LLM', 'slow-1');
      await waitFor(() => llm.requests.length >= 1, 20_000, 20);
      expect((await fetch(`${workerHealth}/readyz`)).status).to.equal(200);

      const stopped = worker.stop('SIGTERM', 30_000);
      const draining = await waitFor(async () => {
        const response = await fetch(`${workerHealth}/readyz`);
        return response.status === 503 ? ((await response.json()) as { status: string }) : false;
      }, 5000, 50);
      expect(draining).to.deep.equal({ status: 'stopping' });
      expect(await stopped, worker.stderr).to.equal(0);

      // Stopped only after the job: the reply is stored, the job completed, the LLM asked once.
      const replies = await database.ownerDb('messages').where({ reply_to: messageId }).select<Array<{ id: string }>>('id');
      expect(replies).to.have.length(1);
      expect(await queue.getJobState(messageId)).to.equal('completed');
      expect(llm.requests).to.have.length(1);
      const announced = await client.nextBotMessage(new Set(), 10_000);
      expect(announced.messageId).to.equal(replies[0]?.id);
      expect(announced.text).to.equal('Take your time, the answer comes.');
    } finally {
      client.close();
    }
  });
});
