import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { generateJwtPrivateKeyPem } from '../../shared/config/index.js';
import { closeAllClients, connectClient, createBot, createConversation, signedInUser, signOutAll, type ChatClient, type SignedInUser } from '../../test/helpers/chat.js';
import { randomHexKey, testConfig } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { cleanupProcesses, freePort, makeTempDir, startCli, startPrivateRedis, waitForHttpOk, type EnvOverrides, type PrivateRedis, type RunningCli } from '../../test/helpers/process.js';
import { bullmqBaseline } from './bullmqBaseline.js';
import { runClient } from './chat.js';
import { percentile, round1, table } from './stats.js';

/**
 * `npm run bench -- chat --api A --workers W`: the chat benchmark against separate processes, as deployed:
 * `botserver api` processes (clients spread over them in turn; rooms shared through the Redis adapter) and
 * `botserver worker reply` processes, on a private Redis and a throwaway database. It measures 1 API + 1 worker
 * first, then starts the others and measures A + W on the same machine, and prints both and their ratio.
 * The clients run in this process.
 */

interface Measured {
  apis: number;
  workers: number;
  replies: number;
  failures: string[];
  wallMs: number;
  latencies: number[];
}

const WARM_UP_MESSAGES = 3;

async function startApi(env: EnvOverrides): Promise<{ cli: RunningCli; url: string }> {
  const port = await freePort();
  const cli = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttpOk(cli, `${url}/readyz`, 120_000);
  return { cli, url };
}

async function startReplyWorker(env: EnvOverrides): Promise<RunningCli> {
  const port = await freePort();
  const cli = startCli(['worker', 'reply'], { ...env, BOTSERVER_HEALTH_PORT: String(port) });
  await waitForHttpOk(cli, `http://127.0.0.1:${port}/readyz`, 120_000);
  return cli;
}

/** N clients, client i on API i mod A, each in a conversation of its own, M messages each in a closed loop. */
async function measure(apiUrls: string[], workers: number, admin: SignedInUser, botId: string, clients: number, messages: number): Promise<Measured> {
  const sessions = await Promise.all(
    Array.from({ length: clients }, async (_, index) => {
      const url = apiUrls[index % apiUrls.length] as string;
      const conversationId = await createConversation(url, admin, botId);
      const client: ChatClient = await connectClient(url, { token: admin.token, timeoutMs: 15_000 });
      const joined = await client.join(conversationId, undefined, 15_000);
      if (!joined.ok) throw new Error(`join failed: ${joined.error}`);
      return { client, conversationId };
    }),
  );
  const started = performance.now();
  const runs = await Promise.all(sessions.map(({ client, conversationId }, index) => runClient(client, conversationId, messages, index)));
  const wallMs = performance.now() - started;
  for (const { client } of sessions) client.close();
  const latencies = runs.flatMap((run) => run.latencies);
  return { apis: apiUrls.length, workers, replies: latencies.length, failures: runs.flatMap((run) => run.failures), wallMs, latencies };
}

const perSecond = (run: Measured): number => run.replies / (run.wallMs / 1000);

function row(run: Measured): string[] {
  return [
    `${run.apis} API + ${run.workers} reply worker${run.workers === 1 ? '' : 's'}`,
    String(run.replies),
    String(run.failures.length),
    String(round1(run.wallMs / 1000)),
    String(round1(perSecond(run))),
    String(round1(percentile(run.latencies, 50))),
    String(round1(percentile(run.latencies, 90))),
    String(round1(percentile(run.latencies, 99))),
    String(round1(Math.max(...run.latencies))),
  ];
}

/** What every process of a multi-process bench shares: the throwaway database, the private Redis, fresh keys. */
export function benchProcessEnv(databaseUrl: string, redisUrl: string): EnvOverrides {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    BOTSERVER_DATA_DIR: makeTempDir('botserver-bench-data-'),
    BOTSERVER_JWT_SECRET: randomHexKey(),
    BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
    DATABASE_ENCRYPTION_KEY: randomHexKey(),
    BOTSERVER_JWT_PRIVATE_KEY: generateJwtPrivateKeyPem(),
    BOTSERVER_QUEUE_PREFIX: '{bench}',
  };
}

export async function runWithProcesses(clients: number, messages: number, layout: { api: number; workers: number }): Promise<number> {
  let database: TestDatabase | undefined;
  let redis: PrivateRedis | undefined;
  const processes: RunningCli[] = [];
  try {
    [database, redis] = await Promise.all([createTestDatabase(), freePort().then(startPrivateRedis)]);
    const env: EnvOverrides = { ...benchProcessEnv(database.url, redis.url), LOG_LEVEL: 'warn' };
    const config = testConfig(Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined)));

    const first = await startApi(env);
    processes.push(first.cli, await startReplyWorker(env));
    const admin = await signedInUser({ url: first.url, config }, 'admin');
    const botId = await createBot(first.url, admin, { name: 'Bench bot', rules: [{ match: 'opening hours', reply: 'We open at 9.' }] });

    await measure([first.url], 1, admin, botId, clients, WARM_UP_MESSAGES);
    const reference = await measure([first.url], 1, admin, botId, clients, messages);
    const results = [reference];
    if (layout.api > 1 || layout.workers > 1) {
      const more = await Promise.all([
        ...Array.from({ length: layout.api - 1 }, () => startApi(env)),
        ...Array.from({ length: layout.workers - 1 }, () => startReplyWorker(env).then((cli) => ({ cli, url: '' }))),
      ]);
      processes.push(...more.map((started) => started.cli));
      const urls = [first.url, ...more.filter((started) => started.url !== '').map((started) => started.url)];
      await measure(urls, layout.workers, admin, botId, clients, WARM_UP_MESSAGES);
      results.push(await measure(urls, layout.workers, admin, botId, clients, messages));
    }
    const baseline = await bullmqBaseline(redis.url, clients, messages);
    const scaled = results.at(-1) as Measured;
    const ratio = Math.round((perSecond(scaled) / perSecond(reference)) * 1000) / 1000;
    const out = [
      `chat benchmark, separate processes  node ${process.version}, ${availableParallelism()} CPU(s); ${clients} clients x ${messages} messages (closed loop), rule bot; clients in this process`,
      '',
      table([['processes', 'replies', 'failures', 'wall s', 'replies/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'], ...results.map(row)]),
      '',
      `${scaled.apis} API + ${scaled.workers} workers ÷ 1 API + 1 worker: ${ratio} (replies/s)`,
      `bare BullMQ add→process, same shape, same Redis: ${round1(baseline.jobsPerSecond)} jobs/s (p50 ${round1(percentile(baseline.latencies, 50))} ms)`,
    ];
    const failures = results.flatMap((run) => run.failures);
    if (failures.length > 0) out.push(`failures: ${[...new Set(failures)].slice(0, 5).join('; ')}`);
    const json = {
      bench: 'chat-processes',
      node: process.version,
      cpus: availableParallelism(),
      clients,
      messagesPerClient: messages,
      runs: results.map((run) => ({ apis: run.apis, workers: run.workers, replies: run.replies, failures: run.failures.length, repliesPerSecond: round1(perSecond(run)), latencyP50Ms: round1(percentile(run.latencies, 50)), latencyP99Ms: round1(percentile(run.latencies, 99)) })),
      ratio,
      baselineJobsPerSecond: round1(baseline.jobsPerSecond),
    };
    process.stdout.write(`${out.join('\n')}\n${JSON.stringify(json)}\n`);
    return failures.length === 0 ? 0 : 1;
  } finally {
    closeAllClients();
    await signOutAll();
    await Promise.allSettled(processes.map((cli) => cli.stop('SIGTERM', 20_000)));
    await cleanupProcesses();
    await database?.destroy();
  }
}
