import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { Queue, type Job } from 'bullmq';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import {
  AuditRecorder,
  GENESIS_HASH,
  appendAuditEvent,
  appendAuditEvents,
  chainHash,
  pseudonym,
  verifyAuditChain,
  type ChainKeys,
} from '../../shared/audit/index.js';
import type { Envelope } from '../../shared/crypto/index.js';
import { AUDIT_ROLE, createDb } from '../../shared/db/index.js';
import { createKernel, type Kernel } from '../../shared/kernel.js';
import { Keys } from '../../shared/keys.js';
import { QueueFactory, type AuditEventPayload, type JobData, type QueueName } from '../../shared/queue/index.js';
import { startAuditWorker } from '../../workers/audit.js';
import { testConfig, uniqueQueuePrefix } from '../helpers/config.js';
import { useTestDatabase } from '../helpers/db.js';
import type { AuditRow } from '../../shared/audit/index.js';


const CONTENT_COLUMNS = ['event_id', 'time', 'tenant_id', 'actor', 'type', 'target', 'outcome', 'ip', 'request_id', 'details'] as const;

const config = testConfig();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function chainKeysOf(keys: Keys): ChainKeys {
  return { chainKey: keys.auditChainKey, pseudonymKey: keys.pseudonymKey };
}

let sequence = 0;
function auditEvent(overrides: Partial<AuditEventPayload> = {}): AuditEventPayload {
  sequence += 1;
  return {
    eventId: randomUUID(),
    time: new Date(Date.UTC(2030, 0, 1) + sequence * 1234).toISOString(),
    tenantId: sequence % 3 === 0 ? null : randomUUID(),
    actor: sequence % 5 === 0 ? null : `user:${randomUUID()}`,
    type: ['auth.login.success', 'data.write', 'authz.denied', 'admin.action'][sequence % 4] ?? 'api.call',
    target: `bot:${sequence}`,
    outcome: (['success', 'failure', 'denied'] as const)[sequence % 3] ?? 'success',
    ip: sequence % 2 === 0 ? `10.0.${sequence % 250}.${sequence % 200}` : null,
    requestId: `req-${sequence}`,
    details: { sequence, nested: { list: [1, 'two', { three: true }] }, note: `event ${sequence}` },
    ...overrides,
  };
}

async function allRows(db: Knex): Promise<AuditRow[]> {
  return (await db('audit_events').orderBy('id')) as AuditRow[];
}

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A TCP port on which nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

function expectLinked(rows: AuditRow[]): void {
  rows.forEach((row, index) => expect(row.prev_hash, `row ${row.id}`).to.equal(index === 0 ? GENESIS_HASH : rows[index - 1]?.hash));
}

describe('audit: the hash chain', function () {
  this.timeout(30_000);
  const keys = new Keys(config.secrets);
  const chainKeys = chainKeysOf(keys);
  after(() => keys.zeroize());

  describe('appending as the audit role', () => {
    const testDb = useTestDatabase();
    const audit = (): Knex => testDb().dbAs(AUDIT_ROLE);

    it('events appended in turn link each to the one before and the chain verifies', async () => {
      const events = [auditEvent(), auditEvent({ actor: null, ip: null, tenantId: null, details: {} }), auditEvent(), auditEvent()];
      for (const event of events) expect(await appendAuditEvent(audit(), chainKeys, event)).to.equal(true);
      const rows = await allRows(testDb().ownerDb);
      expect(rows.map((row) => row.event_id)).to.deep.equal(events.map((event) => event.eventId));
      expectLinked(rows);
      expect(rows[1]?.actor).to.equal(null);
      expect(rows[0]?.details).to.deep.equal(events[0]?.details);
      expect(await verifyAuditChain(audit(), chainKeys)).to.deep.equal({ ok: true, checked: 4 });
    });

    it('the same eventId appended twice writes one row', async () => {
      const event = auditEvent();
      const before = await allRows(testDb().ownerDb);
      expect(await appendAuditEvent(audit(), chainKeys, event)).to.equal(true);
      expect(await appendAuditEvent(audit(), chainKeys, { ...event })).to.equal(false);
      const [first, second] = await Promise.all([appendAuditEvent(audit(), chainKeys, event), appendAuditEvent(audit(), chainKeys, event)]);
      expect([first, second]).to.deep.equal([false, false]);
      const rows = await testDb().ownerDb('audit_events').where({ event_id: event.eventId });
      expect(rows).to.have.length(1);
      expect(await verifyAuditChain(audit(), chainKeys)).to.deep.equal({ ok: true, checked: before.length + 1 });
    });

    it('a chain verified with another key fails at its first row', async () => {
      const other = new Keys(testConfig().secrets);
      try {
        const first = (await allRows(testDb().ownerDb))[0];
        expect(await verifyAuditChain(audit(), chainKeysOf(other))).to.deep.equal({ ok: false, checked: 0, firstBrokenId: first?.id });
      } finally {
        other.zeroize();
      }
    });
  });

  describe('10,000 events appended in batches by concurrent writers', () => {
    const testDb = useTestDatabase();
    let pool: Knex | undefined;
    after(async () => {
      await pool?.destroy();
    });

    it('form one chain: verify reports ok with checked = 10000', async function () {
      // Batches are serialised by the chain's advisory lock; several writers at once must still form one chain.
      // No timing is asserted. Not waiting for the WAL flush on commit (this pool only) takes the disk out of it.
      this.timeout(600_000);
      const url = new URL(testDb().url);
      url.searchParams.set('options', '-c synchronous_commit=off');
      pool = createDb({ url: url.toString(), role: AUDIT_ROLE, poolMax: 20 });
      expect((await pool.raw<{ rows: Array<{ synchronous_commit: string }> }>('SHOW synchronous_commit')).rows[0]?.synchronous_commit).to.equal('off');
      const writer = pool;
      const total = 10_000;
      const writers = 4;
      const batchSize = 50;
      let written = 0;
      for (let start = 0; start < total; start += writers * batchSize) {
        const batches = Array.from({ length: writers }, () => Array.from({ length: batchSize }, () => auditEvent()));
        const results = await Promise.all(batches.map((batch) => appendAuditEvents(writer, chainKeys, batch)));
        written += results.reduce((sum, count) => sum + count, 0);
      }
      expect(written).to.equal(total);
      expect(await verifyAuditChain(testDb().dbAs(AUDIT_ROLE), chainKeys, 777)).to.deep.equal({ ok: true, checked: total });
      const [{ count } = { count: '0' }] = await testDb().ownerDb('audit_events').count<Array<{ count: string }>>('* as count');
      expect(Number(count)).to.equal(total);
      const forks = await testDb().ownerDb('audit_events').select('prev_hash').groupBy('prev_hash').havingRaw('count(*) > 1');
      expect(forks).to.deep.equal([]);
    });
  });

  describe('tampering is detected (done as the owner, with the append-only trigger dropped)', () => {
    const testDb = useTestDatabase();
    const owner = (): Knex => testDb().ownerDb;
    let rows: AuditRow[];

    before(async () => {
      await owner().raw('DROP TRIGGER audit_events_append_only ON audit_events');
    });

    beforeEach(async () => {
      await owner()('audit_events').del();
      for (let index = 0; index < 8; index += 1) {
        await appendAuditEvent(testDb().dbAs(AUDIT_ROLE), chainKeys, auditEvent({ actor: `user:person-${index}`, ip: `192.0.2.${index}` }));
      }
      rows = await allRows(owner());
      expect(rows).to.have.length(8);
      // The untouched chain verifies, so every failure below comes from the tampering.
      expect(await verifyAuditChain(owner(), chainKeys)).to.deep.equal({ ok: true, checked: 8 });
    });

    const row = (index: number): AuditRow => {
      const found = rows[index];
      if (found === undefined) throw new Error(`no row ${index}`);
      return found;
    };

    async function expectBrokenAt(index: number): Promise<void> {
      expect(await verifyAuditChain(owner(), chainKeys)).to.deep.equal({ ok: false, checked: index, firstBrokenId: row(index).id });
    }

    const edits: Array<[string, Record<string, unknown>]> = [
      ['details', { details: JSON.stringify({ sequence: -1, note: 'rewritten' }) }],
      ['outcome', { outcome: 'success' }],
      ['type', { type: 'api.call' }],
      ['time', { time: new Date(Date.UTC(2020, 0, 1)).toISOString() }],
      ['actor (another raw identity)', { actor: 'user:someone-else' }],
      ['target', { target: 'bot:elsewhere' }],
      ['hash', { hash: 'f'.repeat(64) }],
    ];
    for (const [what, change] of edits) {
      it(`changing one row's ${what} → that row is the first broken`, async () => {
        const current = row(3);
        if (what === 'outcome') change.outcome = current.outcome === 'success' ? 'failure' : 'success';
        await owner()('audit_events').where({ id: current.id }).update(change);
        await expectBrokenAt(3);
      });
    }

    it('deleting a middle row → the row after it is reported', async () => {
      await owner()('audit_events').where({ id: row(4).id }).del();
      expect(await verifyAuditChain(owner(), chainKeys)).to.deep.equal({ ok: false, checked: 4, firstBrokenId: row(5).id });
    });

    it('deleting the first row → the new first row is reported', async () => {
      await owner()('audit_events').where({ id: row(0).id }).del();
      expect(await verifyAuditChain(owner(), chainKeys)).to.deep.equal({ ok: false, checked: 0, firstBrokenId: row(1).id });
    });

    async function swapColumns(a: AuditRow, b: AuditRow, columns: readonly (keyof AuditRow)[]): Promise<void> {
      const values = (source: AuditRow): Record<string, unknown> =>
        Object.fromEntries(columns.map((column) => [column, column === 'details' ? JSON.stringify(source.details) : source[column]]));
      await owner().transaction(async (trx) => {
        await trx('audit_events').where({ id: a.id }).update({ event_id: randomUUID() });
        await trx('audit_events').where({ id: b.id }).update(values(a));
        await trx('audit_events').where({ id: a.id }).update(values(b));
      });
    }

    it("swapping two rows' contents (hashes included: a reordering) → the first of them is reported", async () => {
      await swapColumns(row(2), row(5), [...CONTENT_COLUMNS, 'prev_hash', 'hash']);
      await expectBrokenAt(2);
    });

    it("swapping two rows' contents (hashes left in place) → the first of them is reported", async () => {
      await swapColumns(row(2), row(5), CONTENT_COLUMNS);
      await expectBrokenAt(2);
    });

    it('an edit re-hashed without the chain key (here: with another key) → the edited row is reported', async () => {
      const forger = new Keys(testConfig().secrets);
      try {
        let previous = row(2).hash;
        for (const original of rows.slice(3)) {
          const event = {
            eventId: original.event_id,
            time: original.time.toISOString(),
            tenantId: original.tenant_id,
            actor: original.actor,
            type: original.type,
            target: original.target,
            outcome: original.outcome,
            ip: original.ip,
            requestId: original.request_id,
            details: original.id === row(3).id ? { forged: true } : original.details,
          };
          const hash = chainHash(chainKeysOf(forger), previous, event);
          await owner()('audit_events').where({ id: original.id }).update({ details: JSON.stringify(event.details), prev_hash: previous, hash });
          previous = hash;
        }
      } finally {
        forger.zeroize();
      }
      await expectBrokenAt(3);
    });

    it('erasure: replacing raw actors and IPs by their pseudonyms keeps the chain valid', async () => {
      for (const original of rows) {
        await owner()('audit_events')
          .where({ id: original.id })
          .update({
            actor: original.actor === null ? null : pseudonym(keys.pseudonymKey, original.actor),
            ip: original.ip === null ? null : pseudonym(keys.pseudonymKey, original.ip),
          });
      }
      const erased = await allRows(owner());
      expect(erased.every((current) => current.actor === null || current.actor.startsWith('pseudo:'))).to.equal(true);
      expect(erased.map((current) => current.actor)).to.not.include(row(1).actor);
      expect(await verifyAuditChain(owner(), chainKeys)).to.deep.equal({ ok: true, checked: 8 });
    });

    it("erasure with the wrong pseudonym (another identity's) is detected", async () => {
      await owner()('audit_events').where({ id: row(6).id }).update({ actor: pseudonym(keys.pseudonymKey, 'user:somebody-else') });
      await expectBrokenAt(6);
    });
  });

  describe('AuditRecorder', () => {
    const testDb = useTestDatabase();
    const audit = (): Knex => testDb().dbAs(AUDIT_ROLE);
    const cleanups: Array<() => Promise<void> | void> = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    async function rowWithTarget(target: string): Promise<AuditRow | undefined> {
      return (await testDb().ownerDb('audit_events').where({ target }).first()) as AuditRow | undefined;
    }

    it('with Redis unreachable, writes the event straight into the chain', async () => {
      const port = await closedPort();
      const deadRedis = new Redis({ host: '127.0.0.1', port, enableOfflineQueue: false, lazyConnect: true, maxRetriesPerRequest: null, retryStrategy: () => null });
      deadRedis.on('error', () => undefined);
      const queues = new QueueFactory({ connection: deadRedis, ring: keys.payloadRing, prefix: uniqueQueuePrefix() });
      cleanups.push(() => deadRedis.disconnect(), () => queues.close());
      let fallbackOpened = 0;
      const recorder = new AuditRecorder({
        enabled: true,
        queues,
        fallbackDb: () => {
          fallbackOpened += 1;
          return audit();
        },
        keys: chainKeys,
      });
      const target = `file:${randomUUID()}`;
      await recorder.record({ type: 'auth.login.failure', outcome: 'failure', actor: 'user:fallback', target, ip: '198.51.100.7', details: { reason: 'bad_password' } });
      expect(fallbackOpened).to.equal(1);
      const row = await rowWithTarget(target);
      expect(row).to.include({ type: 'auth.login.failure', outcome: 'failure', actor: 'user:fallback', ip: '198.51.100.7' });
      expect(row?.details).to.deep.equal({ reason: 'bad_password' });
      const verified = await verifyAuditChain(audit(), chainKeys);
      expect(verified.ok).to.equal(true);
      const rows = await allRows(testDb().ownerDb);
      expect(verified.checked).to.equal(rows.length);
      expectLinked(rows);
    });

    it('when enqueueing is refused, writes the event straight into the chain', async () => {
      class RefusingQueues extends QueueFactory {
        override enqueue<Q extends QueueName>(_name: Q, _jobName: string, _data: JobData<Q>): Promise<Job<Envelope>> {
          return Promise.reject(new Error('READONLY You cannot write against a read only replica.'));
        }
      }
      const redis = new Redis(config.redisUrl, { lazyConnect: true });
      cleanups.push(() => redis.disconnect());
      const recorder = new AuditRecorder({ enabled: true, queues: new RefusingQueues({ connection: redis, ring: keys.payloadRing }), fallbackDb: audit, keys: chainKeys });
      const target = `bot:${randomUUID()}`;
      await recorder.record({ type: 'config.change', outcome: 'success', actor: 'user:admin', target });
      expect(await rowWithTarget(target)).to.include({ type: 'config.change', outcome: 'success' });
      expect((await verifyAuditChain(audit(), chainKeys)).ok).to.equal(true);
    });

    describe('with a working queue', () => {
      let redis: Redis;
      let prefix: string;
      let queues: QueueFactory;
      beforeEach(() => {
        redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
        prefix = uniqueQueuePrefix();
        queues = new QueueFactory({ connection: redis, ring: keys.payloadRing, prefix });
        cleanups.push(async () => {
          await queues.close();
          const raw = new Queue('audit', { connection: redis, prefix });
          await raw.obliterate({ force: true });
          await raw.close();
          redis.disconnect();
        });
      });

      it('enqueues the event (job id = event id) instead of writing it', async () => {
        const before = (await allRows(testDb().ownerDb)).length;
        const recorder = new AuditRecorder({ enabled: true, queues, fallbackDb: () => expect.fail('the fallback must not be used'), keys: chainKeys });
        const target = `bot:${randomUUID()}`;
        await recorder.record({ type: 'data.write', outcome: 'success', target });
        const [job] = await queues.queue('audit').getJobs(['waiting', 'wait', 'prioritized']);
        expect(job?.name).to.equal('data.write');
        expect(job?.id).to.match(/^[0-9a-f-]{36}$/);
        const payload = queues.open('audit', job as Job<Envelope>);
        expect(payload).to.include({ eventId: job?.id, target, type: 'data.write', outcome: 'success' });
        expect(await allRows(testDb().ownerDb)).to.have.length(before);
      });

      it('with enabled:false writes nothing, enqueues nothing', async () => {
        const before = (await allRows(testDb().ownerDb)).length;
        const recorder = new AuditRecorder({ enabled: false, queues, fallbackDb: () => expect.fail('the fallback must not be used'), keys: chainKeys });
        await recorder.record({ type: 'auth.logout', outcome: 'success', actor: 'user:quiet', target: 'session:1' });
        await sleep(100);
        const counts = await queues.queue('audit').getJobCounts();
        expect(Object.values(counts).reduce((sum, count) => sum + count, 0)).to.equal(0);
        expect(await allRows(testDb().ownerDb)).to.have.length(before);
      });
    });
  });

  describe('end to end: api kernel → encrypted audit queue → audit worker → chain', () => {
    const testDb = useTestDatabase();
    let auditKernel: Kernel | undefined;
    let apiKernel: Kernel | undefined;
    let prefix: string | undefined;

    after(async () => {
      await apiKernel?.close();
      await auditKernel?.close();
      if (prefix === undefined) return;
      const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
      const raw = new Queue('audit', { connection: redis, prefix });
      await raw.obliterate({ force: true });
      await raw.close();
      redis.disconnect();
    });

    it('events recorded by the api kernel appear in audit_events, in order, linked, verifiable', async () => {
      const e2eConfig = testConfig({ DATABASE_URL: testDb().url });
      prefix = uniqueQueuePrefix();
      auditKernel = createKernel(e2eConfig, 'audit', { queuePrefix: prefix });
      startAuditWorker(auditKernel);
      apiKernel = createKernel(e2eConfig, 'api', { queuePrefix: prefix });

      const marker = randomBytes(6).toString('hex');
      const inputs = [
        { type: 'auth.login.success', outcome: 'success', actor: `user:${marker}`, target: `session:${marker}:1`, ip: '203.0.113.5', requestId: 'req-e2e-1' },
        { type: 'authz.denied', outcome: 'denied', actor: `user:${marker}`, target: `bot:${marker}:2`, details: { route: '/api/bots/x' } },
        { type: 'auth.logout', outcome: 'success', actor: `user:${marker}`, target: `session:${marker}:3` },
      ] as const;
      for (const input of inputs) await apiKernel.audit.record({ ...input });

      const rows = await eventually(
        'the events in audit_events',
        async () => {
          const found = (await testDb().ownerDb('audit_events').where('target', 'like', `%:${marker}:%`).orderBy('id')) as AuditRow[];
          return found.length === inputs.length ? found : undefined;
        },
        15_000,
      );
      expect(rows.map((row) => [row.type, row.outcome, row.actor, row.target])).to.deep.equal(inputs.map((input) => [input.type, input.outcome, input.actor, input.target]));
      expect(rows[0]).to.include({ ip: '203.0.113.5', request_id: 'req-e2e-1' });
      expect(rows[1]?.details).to.deep.equal({ route: '/api/bots/x' });
      // They came through the queue (job id = event id), not through the recorder's direct fallback.
      const auditQueue = apiKernel.queues.queue('audit');
      for (const row of rows) expect(await auditQueue.getJobState(row.event_id)).to.equal('completed');

      const everything = await allRows(testDb().ownerDb);
      expectLinked(everything);
      const verifier = new Keys(e2eConfig.secrets);
      try {
        expect(await verifyAuditChain(testDb().ownerDb, chainKeysOf(verifier))).to.deep.equal({ ok: true, checked: everything.length });
      } finally {
        verifier.zeroize();
      }
    });
  });
});
