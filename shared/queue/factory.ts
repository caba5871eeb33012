import { Queue, UnrecoverableError, Worker, type Job, type JobsOptions, type WorkerOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { decryptJson, encryptJson, type Envelope, type KeyRing } from '../crypto/index.js';
import { ValidationError } from '../errors.js';
import { isDependencyFailure } from '../failures.js';
import { log } from '../log/index.js';
import { jobAad, jobSchemas, type JobData, type QueueName } from './catalogue.js';

export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 5,
  backoff: { type: 'exponential', delay: 1000 },
  removeOnComplete: { age: 24 * 3600, count: 1000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 5000 },
};

export type Processor<Q extends QueueName> = (data: JobData<Q>, job: Job<Envelope>) => Promise<unknown>;

export interface QueueFactoryOptions {
  connection: Redis;
  ring: KeyRing;
  /** Redis key prefix; lets tests run on an isolated namespace. */
  prefix?: string;
  /** BullMQ's job lock (BOTSERVER_JOB_LOCK_MS): a crashed worker's active jobs run again within about 1.5 times this. */
  jobLockMs?: number;
}

/** Redis going away is an outage to report, not a bug: a warning; anything else is an error. */
function logQueueError(message: string, queue: QueueName, error: Error): void {
  if (isDependencyFailure(error)) log.warn(message, { queue, error: error.message });
  else log.error(message, { queue, error: error.message });
}

/** How many times a job may be found stalled (its worker died) before it fails: crashes must not lose jobs. */
const MAX_STALLED_COUNT = 5;

/**
 * Creates every queue and worker of the catalogue with the same retry, cleanup and shutdown rules. Payloads are
 * validated against the queue's schema, then sealed in an AES-256-GCM envelope bound to the queue and job name.
 */
export class QueueFactory {
  private readonly queues = new Map<QueueName, Queue<Envelope>>();
  private readonly workers: Worker<Envelope>[] = [];
  /** Connections the factory opened itself (BullMQ never closes a connection it is handed), closed by `close()`. */
  private readonly ownConnections: Redis[] = [];
  private readonly options: QueueFactoryOptions;

  constructor(options: QueueFactoryOptions) {
    this.options = options;
  }

  get prefix(): string {
    return this.options.prefix ?? 'bull';
  }

  queue(name: QueueName): Queue<Envelope> {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = new Queue<Envelope>(name, { connection: this.options.connection, prefix: this.prefix, defaultJobOptions: DEFAULT_JOB_OPTIONS });
      queue.on('error', (error: Error) => logQueueError('queue error', name, error));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Validates and encrypts the payload, then adds the job. A jobId makes the enqueue idempotent. */
  async enqueue<Q extends QueueName>(name: Q, jobName: string, data: JobData<Q>, options: JobsOptions = {}): Promise<Job<Envelope>> {
    const parsed = jobSchemas[name].safeParse(data);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new ValidationError(`invalid ${name} job: ${issue?.message ?? 'invalid'}`, issue?.path.join('.'));
    }
    const envelope = encryptJson(this.options.ring, parsed.data, jobAad(name, jobName));
    return this.queue(name).add(jobName, envelope, options);
  }

  /** Starts a worker that decrypts and validates every job before handing it to the processor. */
  worker<Q extends QueueName>(name: Q, processor: Processor<Q>, options: Partial<WorkerOptions> = {}): Worker<Envelope> {
    const connection = this.options.connection.duplicate({ maxRetriesPerRequest: null });
    connection.on('error', (error: Error) => log.debug('redis connection error', { connection: `worker ${name}`, error: error.message }));
    this.ownConnections.push(connection);
    const lockDuration = this.options.jobLockMs ?? 30_000;
    const worker = new Worker<Envelope>(name, async (job) => processor(this.open(name, job), job), {
      connection,
      prefix: this.prefix,
      concurrency: 10,
      // The lock is renewed every lockDuration / 2 while a job runs (a long LLM stream keeps it); once a worker is
      // killed its lock lapses within lockDuration, and the stalled-job check, run twice per lock, hands the job on.
      lockDuration,
      stalledInterval: Math.max(500, Math.floor(lockDuration / 2)),
      maxStalledCount: MAX_STALLED_COUNT,
      ...options,
    });
    worker.on('failed', (job, error) =>
      log.warn('job failed', { queue: name, jobId: job?.id, jobName: job?.name, attempts: job?.attemptsMade, error: error.message }),
    );
    worker.on('error', (error) => logQueueError('worker error', name, error));
    this.workers.push(worker);
    return worker;
  }

  /** Decrypts a job's payload; a payload that fails authentication or validation is never retried. */
  open<Q extends QueueName>(name: Q, job: Job<Envelope>): JobData<Q> {
    let value: unknown;
    try {
      value = decryptJson(this.options.ring, job.data, jobAad(name, job.name));
    } catch (error) {
      throw new UnrecoverableError(`payload of ${name} job ${job.id ?? '?'} could not be decrypted: ${(error as Error).message}`);
    }
    const parsed = jobSchemas[name].safeParse(value);
    if (!parsed.success) throw new UnrecoverableError(`payload of ${name} job ${job.id ?? '?'} does not match its schema`);
    return parsed.data as JobData<Q>;
  }

  /** Graceful shutdown: workers finish their current jobs, then every queue closes. */
  async close(): Promise<void> {
    await Promise.allSettled(this.workers.map((worker) => worker.close()));
    await Promise.allSettled([...this.queues.values()].map((queue) => queue.close()));
    for (const connection of this.ownConnections) connection.disconnect();
    this.ownConnections.length = 0;
    this.workers.length = 0;
    this.queues.clear();
  }
}
