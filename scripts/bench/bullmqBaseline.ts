import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

export interface BaselineResult {
  jobs: number;
  wallMs: number;
  jobsPerSecond: number;
  latencies: number[];
}

/**
 * The floor under the chat benchmark: a bare BullMQ add→process loop on the same Redis, with the same shape (N
 * closed-loop clients, M jobs each, worker concurrency 20, all in one process), and no crypto, database or sockets.
 */
export async function bullmqBaseline(redisUrl: string, clients: number, jobsPerClient: number): Promise<BaselineResult> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const prefix = `bench-${randomBytes(6).toString('hex')}`;
  const queue = new Queue('baseline', { connection, prefix });
  const waiting = new Map<string, () => void>();
  const worker = new Worker(
    'baseline',
    async (job) => {
      waiting.get(String(job.id))?.();
      return Promise.resolve();
    },
    { connection: connection.duplicate({ maxRetriesPerRequest: null }), prefix, concurrency: 20 },
  );
  await worker.waitUntilReady();
  const latencies: number[] = [];
  const runClient = async (client: number): Promise<void> => {
    for (let index = 0; index < jobsPerClient; index += 1) {
      const jobId = `${client}-${index}`;
      const started = performance.now();
      const processed = new Promise<void>((resolve) => waiting.set(jobId, resolve));
      await queue.add('job', { client, index }, { jobId, removeOnComplete: true });
      await processed;
      waiting.delete(jobId);
      latencies.push(performance.now() - started);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: clients }, (_, client) => runClient(client)));
  const wallMs = performance.now() - started;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return { jobs: latencies.length, wallMs, jobsPerSecond: latencies.length / (wallMs / 1000), latencies };
}
