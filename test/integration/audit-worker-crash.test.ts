import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { AuditRecorder, verifyAuditChain, type ChainKeys } from '../../shared/audit/index.js';
import type { Config } from '../../shared/config/index.js';
import { Keys } from '../../shared/keys.js';
import { QueueFactory } from '../../shared/queue/index.js';
import { testConfig } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanupProcesses, isAlive, startCli, waitFor, type EnvOverrides, type RunningCli } from '../helpers/process.js';
import { emptyRedisDb } from '../helpers/redis.js';

const REDIS_SERVER = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');


describe('audit worker processes: a crash loses nothing, two at once make one chain', function () {
  this.timeout(240_000);
  let database: TestDatabase;
  let config: Config;
  let keys: Keys;
  let chainKeys: ChainKeys;
  let redis: Redis;
  let queues: QueueFactory;
  let recorder: AuditRecorder;
  let env: EnvOverrides;

  const owner = (): Knex => database.ownerDb;
  const count = async (where: (query: Knex.QueryBuilder) => Knex.QueryBuilder = (query) => query): Promise<number> => {
    const [row] = await where(owner()('audit_events')).count<Array<{ n: string }>>('* as n');
    return Number(row?.n ?? 0);
  };

  /** Records `total` events `<label>:<n>` through the encrypted audit queue (never the direct fallback). */
  async function enqueue(label: string, total: number): Promise<void> {
    for (let start = 0; start < total; start += 200) {
      const batch = Array.from({ length: Math.min(200, total - start) }, (_, offset) => start + offset);
      await Promise.all(
        batch.map((n) => recorder.record({ type: 'api.call', outcome: 'success', actor: `user-${n % 7}`, ip: `192.0.2.${n % 250}`, target: `${label}:${n}`, details: { n } })),
      );
    }
  }

  function startWorker(): RunningCli {
    return startCli(['worker', 'audit'], env);
  }

  async function workersConnected(expected: number): Promise<void> {
    await waitFor(async () => (await queues.queue('audit').getWorkersCount()) === expected, 30_000, 50);
  }

  /** Every `<label>:<n>` exactly once, for n in 0..total-1. */
  async function expectEachOnce(label: string, total: number): Promise<void> {
    const rows = await owner()('audit_events').where('target', 'like', `${label}:%`).groupBy('target').select<Array<{ target: string; n: string }>>('target', owner().raw('count(*) as n'));
    expect(rows.filter((row) => row.n !== '1'), 'duplicates').to.deep.equal([]);
    expect(rows.map((row) => row.target).sort()).to.deep.equal(Array.from({ length: total }, (_, n) => `${label}:${n}`).sort());
  }

  async function expectOneChain(): Promise<void> {
    const total = await count();
    expect(await verifyAuditChain(owner(), chainKeys)).to.deep.equal({ ok: true, checked: total });
    const forks = await owner()('audit_events').select('prev_hash').groupBy('prev_hash').havingRaw('count(*) > 1');
    expect(forks, 'two rows chained to the same predecessor').to.deep.equal([]);
  }

  before(async () => {
    database = await createTestDatabase();
    const redisUrl = new URL(REDIS_SERVER.toString());
    redisUrl.pathname = `/${await emptyRedisDb()}`;
    config = testConfig({ DATABASE_URL: database.url, REDIS_URL: redisUrl.toString() });
    keys = new Keys(config.secrets);
    chainKeys = { chainKey: keys.auditChainKey, pseudonymKey: keys.pseudonymKey };
    redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
    // The API's side of the queue, in this process: BullMQ's default prefix, the same keys as the workers.
    queues = new QueueFactory({ connection: redis, ring: keys.payloadRing });
    recorder = new AuditRecorder({ enabled: true, queues, fallbackDb: () => expect.fail('the direct fallback must not be used'), keys: chainKeys });
    env = {
      DATABASE_URL: database.url,
      REDIS_URL: config.redisUrl,
      BOTSERVER_DATA_DIR: config.dataDir,
      BOTSERVER_JWT_SECRET: config.secrets.jwtSecret,
      BOTSERVER_ENCRYPTION_KEY: config.secrets.encryptionKey,
      DATABASE_ENCRYPTION_KEY: config.secrets.databaseEncryptionKey,
      LOG_LEVEL: 'error',
      // The killed worker's jobs run again once their lock expires: 2 s here instead of 30 s.
      BOTSERVER_JOB_LOCK_MS: '2000',
    };
  });

  after(async () => {
    await cleanupProcesses();
    await queues?.close();
    if (redis !== undefined) {
      await redis.flushdb();
      redis.disconnect();
    }
    await database?.destroy();
    keys?.zeroize();
  });

  it('kill -9 of the worker mid-stream, then a restart: all 2,000 events, each once, one valid chain', async () => {
    const total = 2000;
    await enqueue('crash', total);
    expect(await queues.queue('audit').getWaitingCount()).to.equal(total);

    const first = startWorker();
    await waitFor(async () => (await count()) >= 100, 60_000, 5);
    const pid = first.child.pid ?? expect.fail('no pid');
    process.kill(pid, 'SIGKILL');
    await first.exited;
    expect(isAlive(pid)).to.equal(false);
    const atKill = await count();
    console.log(`      (killed the worker with ${atKill} of ${total} events written)`);
    expect(atKill, 'the worker was killed mid-stream').to.be.below(total);

    const second = startWorker();
    // Jobs the killed worker held run again once their lock expires (BullMQ's stalled-job check).
    await waitFor(async () => (await count()) >= total, 180_000, 200);
    await waitFor(async () => (await queues.queue('audit').getActiveCount()) + (await queues.queue('audit').getWaitingCount()) === 0, 60_000, 200);
    expect(await count()).to.equal(total);
    await expectEachOnce('crash', total);
    await expectOneChain();
    expect(await second.stop('SIGTERM')).to.equal(0);
  });

  it('two audit workers consuming the same stream at once: every event once, in one valid chain', async () => {
    const before = await count();
    const workers = [startWorker(), startWorker()];
    await workersConnected(2);
    const total = 2000;
    await enqueue('dual', total);
    await waitFor(async () => (await count()) >= before + total, 120_000, 200);
    await waitFor(async () => (await queues.queue('audit').getActiveCount()) + (await queues.queue('audit').getWaitingCount()) === 0, 60_000, 200);
    expect(await count()).to.equal(before + total);
    await expectEachOnce('dual', total);
    await expectEachOnce('crash', 2000);
    await expectOneChain();
    for (const worker of workers) expect(await worker.stop('SIGTERM')).to.equal(0);
  });
});
