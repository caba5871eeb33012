import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { perSecond, saturate, type LoadTarget } from './load.js';

export interface BaselineResult {
  jobs: number;
  wallMs: number;
  jobsPerSecond: number;
  latencies: number[];
}

/** The size of a chat message in the benchmark, and so of the bare loop's payload. */
export const PAYLOAD_CHARS = 300;

export interface BareLoop {
  /** The worker process, for its CPU time. */
  workerPid: number;
  /** `lanes` closed-loop series of jobs: add, a worker in the other process takes it, its id comes back by pub/sub. */
  target(lanes: number): LoadTarget;
  close(): Promise<void>;
}

const WORKER_SCRIPT = fileURLToPath(new URL('./bareWorker.ts', import.meta.url));

function waitForReady(child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('ready')) resolve();
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('exit', (code) => reject(new Error(`the bare worker exited (${code ?? 'signal'}): ${output}`)));
  });
}

/**
 * The floor under the chat benchmark: a bare BullMQ add → process → signal-back loop on the same Redis, its worker
 * in a process of its own with the reply worker's concurrency, the same payload size, and no crypto, database or
 * sockets.
 */
export async function startBareLoop(redisUrl: string, concurrency: number): Promise<BareLoop> {
  const prefix = `bench-${randomBytes(6).toString('hex')}`;
  const channel = `${prefix}:done`;
  const worker = spawn(process.execPath, ['--import', 'tsx', WORKER_SCRIPT, redisUrl, prefix, String(concurrency), channel], { stdio: ['ignore', 'pipe', 'pipe'] });
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const subscriber = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue('baseline', { connection, prefix });
  const waiting = new Map<string, () => void>();
  try {
    await waitForReady(worker);
    await subscriber.subscribe(channel);
  } catch (error) {
    worker.kill('SIGKILL');
    subscriber.disconnect();
    connection.disconnect();
    throw error;
  }
  subscriber.on('message', (_channel: string, jobId: string) => waiting.get(jobId)?.());
  const text = 'x'.repeat(PAYLOAD_CHARS);
  let sequence = 0;
  return {
    workerPid: worker.pid ?? 0,
    target: (lanes) => ({
      lanes,
      async roundTrip(lane) {
        const jobId = `${lane}-${(sequence += 1)}`;
        const processed = new Promise<void>((resolve) => waiting.set(jobId, resolve));
        try {
          await queue.add('job', { lane, text }, { jobId, removeOnComplete: true });
          await processed;
        } finally {
          waiting.delete(jobId);
        }
      },
    }),
    async close() {
      const exited = new Promise((resolve) => worker.once('exit', resolve));
      worker.kill('SIGTERM');
      await exited;
      await queue.obliterate({ force: true });
      await queue.close();
      subscriber.disconnect();
      connection.disconnect();
    },
  };
}

/** `clients` closed-loop series of `jobsPerClient` jobs each on a fresh bare loop (concurrency 20). */
export async function bullmqBaseline(redisUrl: string, clients: number, jobsPerClient: number): Promise<BaselineResult> {
  const loop = await startBareLoop(redisUrl, 20);
  try {
    const run = await saturate(loop.target(clients), 10 * 60_000, clients * jobsPerClient);
    return { jobs: run.completed, wallMs: run.wallMs, jobsPerSecond: perSecond(run), latencies: run.latencies };
  } finally {
    await loop.close();
  }
}
