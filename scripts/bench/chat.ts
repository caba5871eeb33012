import { bullmqBaseline } from './bullmqBaseline.js';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { configureProcessLogging } from '../../shared/kernel.js';
import { apiTestConfig, startTestApi, type TestApi } from '../../test/helpers/api.js';
import { closeAllClients, connectClient, createBot, createConversation, signedInUser, signOutAll, type ChatClient } from '../../test/helpers/chat.js';
import { uniqueQueuePrefix } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { percentile, round1, table } from './stats.js';

/**
 * Chat benchmark: a throwaway database, an API server and the reply worker in this process (the reply travels the
 * real path: Socket.IO → PostgreSQL → encrypted `bot-reply` job → worker → Redis emitter → adapter → socket), then
 * N socket clients, each in its own conversation with a rule bot, each sending M messages one after the other
 * (closed loop: the next message leaves when the previous reply has arrived). Latency is from `message:send` to the
 * bot's `message:new` in that conversation. The clients run in this process too.
 */

const DEFAULT_CLIENTS = 50;
const DEFAULT_MESSAGES = 20;
/** Socket.IO allows 30 events per socket per 10 s (api/socket/handlers.ts); one is the join. */
const MAX_MESSAGES = 29;
const REPLY_TIMEOUT_MS = 30_000;

export interface Options {
  clients: number;
  messages: number;
  /** Set: API and reply-worker processes of their own (`botserver api`, `botserver worker reply`) instead of one process. */
  processes?: { api: number; workers: number };
}

function usage(): string {
  return (
    `usage: npm run bench -- chat [--clients N (default ${DEFAULT_CLIENTS})] [--messages M (default ${DEFAULT_MESSAGES}, at most ${MAX_MESSAGES}: the per-socket event limit)]\n` +
    '                            [--api A --workers W (separate processes: A APIs and W reply workers, compared with 1 and 1)]\n'
  );
}

function parseArgs(args: string[]): Options | undefined {
  const options: Options = { clients: DEFAULT_CLIENTS, messages: DEFAULT_MESSAGES };
  let api: number | undefined;
  let workers: number | undefined;
  for (let index = 0; index < args.length; index += 1) {
    const [flag, inline] = (args[index] ?? '').split('=', 2);
    const value = inline ?? args[(index += 1)];
    const count = Number(value);
    if (value === undefined || !/^\d+$/.test(value) || count < 1) return undefined;
    if (flag === '--clients' && count <= 2000) options.clients = count;
    else if (flag === '--messages' && count <= MAX_MESSAGES) options.messages = count;
    else if (flag === '--api' && count <= 16) api = count;
    else if (flag === '--workers' && count <= 16) workers = count;
    else return undefined;
  }
  if (api !== undefined || workers !== undefined) options.processes = { api: api ?? 1, workers: workers ?? 1 };
  return options;
}

export interface ClientRun {
  latencies: number[];
  failures: string[];
}

/** One client's closed loop: send, wait for the bot's reply in its conversation, repeat. */
export async function runClient(client: ChatClient, conversationId: string, messages: number, clientIndex: number): Promise<ClientRun> {
  const latencies: number[] = [];
  const failures: string[] = [];
  for (let index = 0; index < messages; index += 1) {
    const answered = new Set(client.messages.filter((message) => message.role === 'bot').map((message) => message.messageId));
    const started = performance.now();
    try {
      const ack = await client.send(conversationId, `opening hours? (${clientIndex}.${index})`, `bench-${clientIndex}-${index}`, REPLY_TIMEOUT_MS);
      if (!ack.ok) {
        failures.push(ack.error);
        continue;
      }
      // Closed loop in a conversation of its own: the first bot message not seen before is the answer.
      await client.waitForMessage((message) => message.role === 'bot' && message.conversationId === conversationId && !answered.has(message.messageId), REPLY_TIMEOUT_MS);
      latencies.push(performance.now() - started);
    } catch (error: unknown) {
      failures.push(error instanceof Error ? error.message.slice(0, 80) : String(error));
    }
  }
  return { latencies, failures };
}

export async function run(args: string[]): Promise<number> {
  const options = parseArgs(args);
  if (options === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  if (options.processes !== undefined) return (await import('./chatProcesses.js')).runWithProcesses(options.clients, options.messages, options.processes);
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers | undefined;
  try {
    database = await createTestDatabase();
    const config = apiTestConfig(database.url, {
      LOG_LEVEL: 'warn',
      // Every request comes from 127.0.0.1 and one account: keep the HTTP limits out of the measurement.
      BOTSERVER_RATE_LIMIT_PER_IP: '1000000',
      BOTSERVER_RATE_LIMIT_PER_USER: '1000000',
    });
    configureProcessLogging(config, 'botserver-bench');
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    const admin = await signedInUser(api, 'admin');
    const botId = await createBot(api.url, admin, { name: 'Bench bot', rules: [{ match: 'opening hours', reply: 'We open at 9.' }] });
    const testApi = api;

    const sessions = await Promise.all(
      Array.from({ length: options.clients }, async () => {
        const conversationId = await createConversation(testApi.url, admin, botId);
        const client = await connectClient(testApi.url, { token: admin.token, timeoutMs: 15_000 });
        const joined = await client.join(conversationId, undefined, 15_000);
        if (!joined.ok) throw new Error(`join failed: ${joined.error}`);
        return { client, conversationId };
      }),
    );

    const started = performance.now();
    const runs = await Promise.all(sessions.map(({ client, conversationId }, index) => runClient(client, conversationId, options.messages, index)));
    const wallMs = performance.now() - started;

    const latencies = runs.flatMap((r) => r.latencies);
    const failures = runs.flatMap((r) => r.failures);
    const baseline = await bullmqBaseline(config.redisUrl, options.clients, options.messages);
    const result = {
      bench: 'chat',
      node: process.version,
      cpus: availableParallelism(),
      clients: options.clients,
      messagesPerClient: options.messages,
      sent: options.clients * options.messages,
      replies: latencies.length,
      failures: failures.length,
      wallMs: round1(wallMs),
      repliesPerSecond: round1(latencies.length / (wallMs / 1000)),
      latencyP50Ms: round1(percentile(latencies, 50)),
      latencyP90Ms: round1(percentile(latencies, 90)),
      latencyP99Ms: round1(percentile(latencies, 99)),
      latencyMaxMs: round1(Math.max(...latencies)),
      baselineJobsPerSecond: round1(baseline.jobsPerSecond),
      baselineP50Ms: round1(percentile(baseline.latencies, 50)),
      baselineP99Ms: round1(percentile(baseline.latencies, 99)),
      /** What we track: the share of bare BullMQ throughput the whole pipeline keeps. */
      ratioToBaseline: Math.round((latencies.length / (wallMs / 1000) / baseline.jobsPerSecond) * 1000) / 1000,
    };
    const out = [
      `chat benchmark  node ${process.version}, ${availableParallelism()} CPU(s); API, reply worker and clients in one process`,
      '',
      table([
        ['clients', 'msgs/client', 'sent', 'replies', 'failures', 'wall s', 'replies/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms'],
        [result.clients, result.messagesPerClient, result.sent, result.replies, result.failures, round1(wallMs / 1000), result.repliesPerSecond, result.latencyP50Ms, result.latencyP90Ms, result.latencyP99Ms, result.latencyMaxMs].map(String),
      ]),
      '(closed loop per client: the next message is sent when the previous reply arrived; latency = message:send to the bot\'s message:new)',
      '',
      table([
        ['bare BullMQ add→process', 'jobs', 'jobs/s', 'p50 ms', 'p99 ms', 'chat ÷ bare'],
        ['same shape, same Redis', String(baseline.jobs), String(result.baselineJobsPerSecond), String(result.baselineP50Ms), String(result.baselineP99Ms), String(result.ratioToBaseline)],
      ]),
    ];
    if (failures.length > 0) out.push(`failures: ${[...new Set(failures)].slice(0, 5).join('; ')}`);
    process.stdout.write(`${out.join('\n')}\n${JSON.stringify(result)}\n`);
    return failures.length === 0 ? 0 : 1;
  } finally {
    closeAllClients();
    await signOutAll();
    await workers?.shutdown();
    if (api !== undefined) {
      for (const name of ['bot-reply', 'audit'] as const) {
        await api.kernel.queues
          .queue(name)
          .obliterate({ force: true })
          .catch((error: unknown) => process.stderr.write(`bench cleanup (${name} queue): ${String(error)}\n`));
      }
      await api.stop();
    }
    await database?.destroy();
  }
}
