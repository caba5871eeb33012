/**
 * The bare side of the chat benchmark's baseline, in a process of its own: a plain BullMQ worker that answers each
 * job by publishing its id on a Redis channel (as the reply worker answers through the Socket.IO emitter), with no
 * crypto, database or sockets. Usage: node --import tsx scripts/bench/bareWorker.ts REDIS_URL PREFIX CONCURRENCY CHANNEL
 */
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const [redisUrl, prefix, concurrencyText, channel] = process.argv.slice(2);
if (redisUrl === undefined || prefix === undefined || concurrencyText === undefined || channel === undefined) {
  process.stderr.write('usage: bareWorker.ts REDIS_URL PREFIX CONCURRENCY CHANNEL\n');
  process.exit(2);
}
const publisher = new Redis(redisUrl, { maxRetriesPerRequest: null });
const worker = new Worker(
  'baseline',
  async (job) => {
    await publisher.publish(channel, String(job.id));
  },
  { connection: new Redis(redisUrl, { maxRetriesPerRequest: null }), prefix, concurrency: Number(concurrencyText) },
);
await worker.waitUntilReady();
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void worker.close().finally(() => {
    publisher.disconnect();
    process.exit(0);
  });
});
