import { expect } from 'chai';
import { Redis } from 'ioredis';
import { generateJwtPrivateKeyPem } from '../../shared/config/index.js';
import { closeAllClients, createBot, restOk, signedInUser, signOutAll } from '../helpers/chat.js';
import { randomHexKey, testConfig } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanupProcesses, freePort, makeTempDir, startCli, startPrivateRedis, startRedisSentinel, waitFor, waitForHttpOk, type EnvOverrides, type PrivateRedis, type RunningCli } from '../helpers/process.js';
import { connectReconnectingClient } from '../helpers/reconnecting-client.js';

/**
 * Redis behind Sentinel: an API process and a reply worker find the master through REDIS_SENTINELS (REDIS_URL's
 * host is unreachable on purpose), chat works end to end (sessions, rate limits, BullMQ, the Socket.IO adapter and
 * emitter), and after a failover to the replica it still does.
 */

const MASTER_NAME = 'botmaster';

describe('Redis Sentinel', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let master: PrivateRedis;
  let replica: PrivateRedis;
  let sentinel: PrivateRedis;
  let sentinelClient: Redis;
  let api: RunningCli;
  let worker: RunningCli;
  let url: string;
  let botId: string;
  let env: EnvOverrides;

  async function masterPort(): Promise<number> {
    const [, port] = (await sentinelClient.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as [string, string];
    return Number(port);
  }

  before(async function () {
    this.timeout(180_000);
    database = await createTestDatabase();
    master = await startPrivateRedis(await freePort());
    replica = await startPrivateRedis(await freePort(), { replicaOf: master.port });
    sentinel = await startRedisSentinel(await freePort(), MASTER_NAME, master.port);
    sentinelClient = new Redis({ host: '127.0.0.1', port: sentinel.port, maxRetriesPerRequest: 1 });
    // The sentinel has found the replica (it must know one to fail over to).
    await waitFor(async () => ((await sentinelClient.call('SENTINEL', 'replicas', MASTER_NAME)) as unknown[]).length === 1, 20_000, 200);
    env = {
      DATABASE_URL: database.url,
      // Nothing listens there: every connection must come from the sentinel's answer.
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_SENTINELS: `127.0.0.1:${sentinel.port}`,
      REDIS_SENTINEL_NAME: MASTER_NAME,
      BOTSERVER_QUEUE_PREFIX: '{sentinel}',
      BOTSERVER_DATA_DIR: makeTempDir('botserver-sentinel-data-'),
      BOTSERVER_JWT_SECRET: randomHexKey(),
      BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
      DATABASE_ENCRYPTION_KEY: randomHexKey(),
      BOTSERVER_JWT_PRIVATE_KEY: generateJwtPrivateKeyPem(),
    };
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    api = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
    const healthPort = await freePort();
    worker = startCli(['worker', 'reply'], { ...env, BOTSERVER_HEALTH_PORT: String(healthPort) });
    await Promise.all([waitForHttpOk(api, `${url}/readyz`, 60_000), waitForHttpOk(worker, `http://127.0.0.1:${healthPort}/readyz`, 60_000)]);
    // The same keys in this process, to create the admin the API signs in.
    const config = testConfig(Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined)));
    const admin = await signedInUser({ url, config }, 'admin');
    botId = await createBot(url, admin, { name: 'Sentinel bot', public: true, rules: [{ match: 'ping', reply: 'pong' }] });
  });

  after(async function () {
    this.timeout(60_000);
    closeAllClients();
    await signOutAll();
    sentinelClient?.disconnect();
    await Promise.allSettled([api?.stop(), worker?.stop()]);
    await cleanupProcesses();
    await database?.destroy();
  });

  it('chat works through the master the sentinel names, and again after a failover to the replica', async () => {
    const guest = await restOk('POST', `${url}/api/bots/${botId}/guest-token`, 200, { body: {} });
    const client = await connectReconnectingClient(url, String(guest.token), String(guest.conversationId));
    try {
      const seen = new Set<string>();
      await client.send('ping before', 'sentinel-1');
      seen.add((await client.nextBotMessage(seen, 20_000)).messageId);
      // The queue's keys are on the master, under the configured prefix.
      const onMaster = new Redis({ host: '127.0.0.1', port: master.port, maxRetriesPerRequest: 1 });
      expect(await onMaster.keys('{sentinel}:bot-reply:*')).to.not.deep.equal([]);
      onMaster.disconnect();

      await sentinelClient.call('SENTINEL', 'failover', MASTER_NAME);
      await waitFor(async () => (await masterPort()) === replica.port, 30_000, 200);
      await waitFor(async () => (await fetch(`${url}/readyz`)).status === 200, 30_000, 200);

      await client.send('ping after', 'sentinel-2');
      const reply = await client.nextBotMessage(seen, 30_000);
      expect(reply.text).to.equal('pong');
      const onNewMaster = new Redis({ host: '127.0.0.1', port: replica.port, maxRetriesPerRequest: 1 });
      expect(await onNewMaster.call('ROLE').then((role) => (role as string[])[0])).to.equal('master');
      onNewMaster.disconnect();
    } finally {
      client.close();
    }
  });

});
