import { randomBytes, randomUUID } from 'node:crypto';
import { Queue, type Job } from 'bullmq';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { KeyRing, encryptJson, type Envelope } from '../../shared/crypto/index.js';
import { ValidationError } from '../../shared/errors.js';
import { Keys } from '../../shared/keys.js';
import {
  DEFAULT_JOB_OPTIONS,
  QUEUE_NAMES,
  QueueFactory,
  jobAad,
  type AuditEventPayload,
  type JobData,
  type QueueName,
} from '../../shared/queue/index.js';
import { testConfig, uniqueQueuePrefix } from '../helpers/config.js';

const config = testConfig();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Resolves with the first value given to `resolve`; fails the test if none comes in time. */
function deferred<T>(what: string, timeoutMs = 10_000): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`timed out waiting for ${what}`)), timeoutMs);
    resolve = (value) => {
      clearTimeout(timer);
      ok(value);
    };
  });
  return { promise, resolve };
}

/**
 * The ways a canary could show in Redis: as is, as hex, and as base64/base64url at each of the three byte
 * alignments it could have inside a longer encoded text.
 */
function encodingsOf(canary: string): string[] {
  const bytes = Buffer.from(canary, 'utf8');
  const forms = [canary, bytes.toString('hex')];
  for (let offset = 0; offset < 3; offset += 1) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
    const first = Math.ceil((offset * 8) / 6);
    const last = Math.floor(((offset + bytes.length) * 8) / 6);
    for (const encoding of ['base64', 'base64url'] as const) forms.push(padded.toString(encoding).slice(first, last));
  }
  return forms;
}

/** Every key under the prefix and everything stored in it, as one text. */
async function dumpPrefix(redis: Redis, prefix: string): Promise<string> {
  const parts: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', '500');
    cursor = next;
    for (const key of keys) {
      parts.push(key);
      const type = await redis.type(key);
      if (type === 'string') parts.push((await redis.get(key)) ?? '');
      else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, '0', '-1')));
      else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
      else parts.push(`<${type}>`);
    }
  } while (cursor !== '0');
  return parts.join('\n');
}

async function connectionsNamed(redis: Redis, name: string): Promise<number> {
  const list = String(await redis.client('LIST'));
  return list.split('\n').filter((line) => line.includes(` name=${name} `)).length;
}

function botReplyData(): JobData<'bot-reply'> {
  return { tenantId: randomUUID(), conversationId: randomUUID(), messageId: randomUUID() };
}

function auditEvent(overrides: Partial<AuditEventPayload> = {}): AuditEventPayload {
  return {
    eventId: randomUUID(),
    time: new Date().toISOString(),
    tenantId: randomUUID(),
    actor: 'user:queue-test',
    type: 'data.write',
    target: 'bot:queue-test',
    outcome: 'success',
    ip: '127.0.0.1',
    requestId: 'req-queue-test',
    details: {},
    ...overrides,
  };
}

function flipFirstBit(base64url: string): string {
  const bytes = Buffer.from(base64url, 'base64url');
  bytes[0] = (bytes[0] ?? 0) ^ 1;
  return bytes.toString('base64url');
}

describe('queues: encrypted BullMQ jobs (CONTRACT §6)', function () {
  this.timeout(30_000);
  const keys = new Keys(config.secrets);
  const ring = keys.payloadRing;
  let redis: Redis;
  let connectionName: string;
  let prefix: string;
  let factory: QueueFactory;

  beforeEach(() => {
    connectionName = `queue-test-${randomBytes(4).toString('hex')}`;
    redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null, connectionName });
    prefix = uniqueQueuePrefix();
    factory = new QueueFactory({ connection: redis, ring, prefix });
  });

  afterEach(async () => {
    await factory.close();
    for (const name of QUEUE_NAMES) {
      const queue = new Queue(name, { connection: redis, prefix });
      await queue.obliterate({ force: true });
      await queue.close();
    }
    redis.disconnect();
  });

  after(() => keys.zeroize());

  /** The raw BullMQ hash of a job, read straight from Redis. */
  async function rawJob(queue: QueueName, jobId: string | undefined): Promise<Record<string, string>> {
    expect(jobId).to.be.a('string');
    const hash = await redis.hgetall(`${prefix}:${queue}:${jobId}`);
    expect(hash, `no hash at ${prefix}:${queue}:${jobId}`).to.have.property('data');
    return hash;
  }

  async function failedJob(queue: QueueName, jobId: string | undefined): Promise<Job<Envelope>> {
    return eventually(`job ${jobId} to fail`, async () => {
      if (jobId === undefined || (await factory.queue(queue).getJobState(jobId)) !== 'failed') return undefined;
      // Read the job only once it has failed, so its fields (attemptsMade, failedReason) are the final ones.
      return factory.queue(queue).getJob(jobId);
    });
  }

  describe('what Redis holds', () => {
    it('a bot-reply job and an audit job hold only an envelope: no canary in any encoding, anywhere under the prefix', async () => {
      const reply = botReplyData();
      const canary = `canary-${randomBytes(12).toString('hex')}`;
      const event = auditEvent({ target: `file:${canary}`, details: { note: canary, nested: [{ secret: canary }] }, actor: `user:${canary}` });
      const replyJob = await factory.enqueue('bot-reply', 'reply', reply);
      const auditJob = await factory.enqueue('audit', event.type, event);

      for (const [queue, job] of [['bot-reply', replyJob], ['audit', auditJob]] as const) {
        const hash = await rawJob(queue, job.id);
        const envelope = JSON.parse(hash.data ?? '') as Record<string, unknown>;
        expect(Object.keys(envelope).sort()).to.deep.equal(['ct', 'iv', 'kid', 'tag', 'v']);
        expect(envelope.v).to.equal(1);
        expect(envelope.kid).to.equal(ring.currentKid);
        for (const field of ['iv', 'tag', 'ct']) expect(envelope[field]).to.match(/^[A-Za-z0-9_-]+$/);
        expect(hash.name).to.equal(job.name);
      }

      const everything = await dumpPrefix(redis, prefix);
      expect(everything).to.include(`${prefix}:audit:${auditJob.id}`);
      const canaries = [canary, reply.conversationId, reply.messageId, reply.tenantId, event.eventId, event.tenantId ?? '', 'user:queue-test'];
      for (const value of canaries) {
        for (const form of encodingsOf(value)) expect(everything, `Redis shows ${value} as ${form}`).to.not.include(form);
      }
    });

    it('every job gets the factory defaults: 5 attempts, exponential backoff, bounded completed/failed history', async () => {
      const job = await factory.enqueue('bot-reply', 'reply', botReplyData());
      const stored = await factory.queue('bot-reply').getJob(job.id ?? '');
      for (const opts of [job.opts, stored?.opts]) {
        expect(opts?.attempts).to.equal(5);
        expect(opts?.backoff).to.deep.equal({ type: 'exponential', delay: 1000 });
        expect(opts?.removeOnComplete).to.deep.equal(DEFAULT_JOB_OPTIONS.removeOnComplete);
        expect(opts?.removeOnFail).to.deep.equal(DEFAULT_JOB_OPTIONS.removeOnFail);
      }
      expect(DEFAULT_JOB_OPTIONS.removeOnComplete).to.not.be.oneOf([undefined, false]);
      expect(DEFAULT_JOB_OPTIONS.removeOnFail).to.not.be.oneOf([undefined, false]);
    });
  });

  describe('workers', () => {
    it('receive the decrypted, schema-validated data of a bot-reply job', async () => {
      const data = botReplyData();
      const received = deferred<{ data: JobData<'bot-reply'>; name: string }>('the bot-reply job');
      factory.worker('bot-reply', async (payload, job) => {
        received.resolve({ data: payload, name: job.name });
        return Promise.resolve();
      });
      await factory.enqueue('bot-reply', 'reply', data);
      expect(await received.promise).to.deep.equal({ data, name: 'reply' });
    });

    it('receive an audit event with its details intact', async () => {
      const canary = `canary-${randomBytes(8).toString('hex')}`;
      const event = auditEvent({ details: { note: canary, count: 3, list: [1, 'two'] } });
      const received = deferred<JobData<'audit'>>('the audit job');
      factory.worker('audit', async (payload) => {
        received.resolve(payload);
        return Promise.resolve();
      });
      await factory.enqueue('audit', event.type, event, { jobId: event.eventId });
      expect(await received.promise).to.deep.equal(event);
    });
  });

  describe('enqueue validates before anything reaches Redis', () => {
    const invalid: Array<{ queue: QueueName; data: Record<string, unknown>; field: string; echo: string }> = [
      { queue: 'bot-reply', data: { ...botReplyData(), conversationId: 'not-a-uuid-123' }, field: 'conversationId', echo: 'not-a-uuid-123' },
      { queue: 'bot-reply', data: { tenantId: '5d0f3c1e-8a7b-4c2d-9e1f-0a1b2c3d4e5f', conversationId: randomUUID() }, field: 'messageId', echo: '5d0f3c1e-8a7b-4c2d-9e1f-0a1b2c3d4e5f' },
      { queue: 'audit', data: { ...auditEvent(), outcome: 'maybe-later' }, field: 'outcome', echo: 'maybe-later' },
      { queue: 'audit', data: { ...auditEvent(), type: 'Not A Type' }, field: 'type', echo: 'Not A Type' },
      { queue: 'email-inbound', data: { tenantId: randomUUID(), botId: randomUUID(), uidValidity: 1, uid: -7 }, field: 'uid', echo: '-7' },
    ];
    for (const { queue, data, field, echo } of invalid) {
      it(`refuses a ${queue} job with a bad ${field}: ValidationError naming the field, nothing queued`, async () => {
        let thrown: unknown;
        try {
          await factory.enqueue(queue, 'job', data as JobData<typeof queue>);
        } catch (error) {
          thrown = error;
        }
        if (!(thrown instanceof ValidationError)) return expect.fail(`expected a ValidationError, got ${String(thrown)}`);
        expect(thrown.field).to.equal(field);
        expect(thrown.status).to.equal(400);
        expect(thrown.message).to.not.include(echo);
        const counts = await factory.queue(queue).getJobCounts();
        expect(Object.values(counts).reduce((sum, count) => sum + count, 0)).to.equal(0);
      });
    }
  });

  describe('a tampered or misdirected job fails at once, unretried, and never reaches the processor', () => {
    let processed: number;
    beforeEach(() => {
      processed = 0;
    });
    const startWorker = (): void => {
      factory.worker('bot-reply', async () => {
        processed += 1;
        return Promise.resolve();
      });
    };

    async function expectRefused(jobId: string | undefined, reason: RegExp): Promise<void> {
      startWorker();
      const job = await failedJob('bot-reply', jobId);
      expect(job.attemptsMade).to.equal(1);
      expect(job.failedReason).to.match(reason);
      // Give a (wrong) retry the chance to happen before checking it did not.
      await sleep(300);
      expect(await job.getState()).to.equal('failed');
      expect(processed).to.equal(0);
    }

    it('ciphertext rewritten in Redis', async () => {
      const job = await factory.enqueue('bot-reply', 'reply', botReplyData());
      const key = `${prefix}:bot-reply:${job.id}`;
      const envelope = JSON.parse((await rawJob('bot-reply', job.id)).data ?? '') as Envelope;
      await redis.hset(key, 'data', JSON.stringify({ ...envelope, ct: flipFirstBit(envelope.ct) }));
      await expectRefused(job.id, /could not be decrypted/);
    });

    it('an envelope moved from one job hash to another', async () => {
      const first = await factory.enqueue('bot-reply', 'reply', botReplyData());
      const second = await factory.enqueue('bot-reply', 'reply-other', botReplyData());
      const firstData = (await rawJob('bot-reply', first.id)).data ?? '';
      await redis.hset(`${prefix}:bot-reply:${second.id}`, 'data', firstData);
      startWorker();
      const failed = await failedJob('bot-reply', second.id);
      expect(failed.attemptsMade).to.equal(1);
      await eventually('the untouched job to complete', async () => ((await first.getState()) === 'completed' ? true : undefined));
      expect(processed).to.equal(1);
    });

    const misdirected: Array<{ what: string; name: string; envelope: () => Envelope | Record<string, unknown>; reason: RegExp }> = [
      { what: "sealed for another queue's AAD", name: 'reply', envelope: () => encryptJson(ring, botReplyData(), jobAad('embed', 'reply')), reason: /could not be decrypted/ },
      { what: 'sealed for another job name', name: 'reply', envelope: () => encryptJson(ring, botReplyData(), jobAad('bot-reply', 'other')), reason: /could not be decrypted/ },
      {
        what: 'sealed with a key the ring does not hold',
        name: 'reply',
        envelope: () => encryptJson(new KeyRing({ current: randomBytes(32) }), botReplyData(), jobAad('bot-reply', 'reply')),
        reason: /could not be decrypted/,
      },
      { what: 'not an envelope at all', name: 'reply', envelope: () => ({ ...botReplyData() }), reason: /could not be decrypted/ },
      { what: 'well sealed but not matching the schema', name: 'reply', envelope: () => encryptJson(ring, { tenantId: 'x' }, jobAad('bot-reply', 'reply')), reason: /does not match its schema/ },
    ];
    for (const { what, name, envelope, reason } of misdirected) {
      it(`a job added to the raw BullMQ queue ${what}`, async () => {
        const job = await factory.queue('bot-reply').add(name, envelope() as Envelope);
        await expectRefused(job.id, reason);
      });
    }
  });

  describe('shutdown', () => {
    it('close() waits for the job in flight to finish, and leaves no connection of its own open', async () => {
      const started = deferred<void>('the job to start');
      let finished = false;
      factory.worker('bot-reply', async () => {
        started.resolve();
        await sleep(500);
        finished = true;
      });
      const job = await factory.enqueue('bot-reply', 'reply', botReplyData());
      await started.promise;
      expect(finished).to.equal(false);
      await factory.close();
      expect(finished).to.equal(true);
      const queue = new Queue(job.queueName, { connection: redis, prefix });
      try {
        expect(await queue.getJobState(job.id ?? '')).to.equal('completed');
      } finally {
        await queue.close();
      }
      // Only the connection this test opened is left: the worker's own connections are closed.
      await eventually('the worker connections to close', async () => ((await connectionsNamed(redis, connectionName)) === 1 ? true : undefined), 5000);
    });
  });
});
