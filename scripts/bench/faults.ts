import { performance } from 'node:perf_hooks';
import { configureProcessLogging } from '../../shared/kernel.js';
import { apiTestConfig, startTestApi } from '../../test/helpers/api.js';
import { closeAllClients, connectClient, createBot, createConversation, signedInUser, signOutAll, type ChatClient } from '../../test/helpers/chat.js';
import { uniqueQueuePrefix } from '../../test/helpers/config.js';
import { createTestDatabase } from '../../test/helpers/db.js';
import { startLlmServer } from '../../test/helpers/llm-server.js';
import { cleanupProcesses, sharedSettingsEnv, startCli, type RunningCli } from '../../test/helpers/process.js';
import { percentile, round1, table } from './stats.js';

/**
 * Fault benchmark: an API in this process, two `botserver worker reply` processes, and a stream of messages to an
 * LLM bot whose (stand-in) endpoint takes about a second per reply, so a worker always holds active jobs. Worker A
 * is SIGKILLed KILLS times, each time while it works, and started again. For each kill: how long the messages that
 * were unanswered at the kill took to be answered after it (by worker B, or A once back). Figures, not assertions.
 */

const KILLS = 5;
const CLIENTS = 10;
const JOB_LOCK_MS = 5000;

interface KillResult {
  pending: number;
  backAfterMs: number[];
}

function startWorker(env: Record<string, string>): RunningCli {
  return startCli(['worker', 'reply'], env);
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

export async function run(args: string[]): Promise<number> {
  if (args.length > 0) {
    process.stderr.write('usage: npm run bench -- faults\n');
    return 2;
  }
  const llm = await startLlmServer([{ kind: 'stream', deltas: ['We', ' open', ' at', ' nine.'], delayMs: 250 }]);
  const database = await createTestDatabase();
  const prefix = uniqueQueuePrefix();
  const config = apiTestConfig(database.url, { LLM_BASE_URL: llm.url, LLM_API_KEY: 'bench', BOTSERVER_JOB_LOCK_MS: String(JOB_LOCK_MS) });
  configureProcessLogging(config, 'botserver-bench');
  const api = await startTestApi(config, prefix);
  const env = { ...sharedSettingsEnv(config), BOTSERVER_QUEUE_PREFIX: prefix, LLM_BASE_URL: llm.url, LLM_API_KEY: 'bench', BOTSERVER_JOB_LOCK_MS: String(JOB_LOCK_MS), LOG_LEVEL: 'error' };
  let workerA = startWorker(env);
  const workerB = startWorker(env);
  const results: KillResult[] = [];
  try {
    const staff = await signedInUser(api, 'operator');
    const botId = await createBot(api.url, staff, { llm: {} });
    const clients: Array<{ client: ChatClient; conversationId: string }> = [];
    for (let index = 0; index < CLIENTS; index += 1) {
      const user = await signedInUser(api, 'user');
      const conversationId = await createConversation(api.url, user, botId);
      const client = await connectClient(api.url, { token: user.token });
      await client.join(conversationId);
      clients.push({ client, conversationId });
    }
    const answeredAt = new Map<string, number>();
    // Replies do not name the message they answer; each conversation has one message in flight at a time.
    const inFlight = new Map<string, string>();
    let sequence = 0;
    let stop = false;
    const stream = clients.map(async ({ client, conversationId }, index) => {
      while (!stop) {
        const seen = new Set(client.messages.filter((message) => message.role === 'bot').map((message) => message.messageId));
        const ack = await client.send(conversationId, `hours? ${index}-${(sequence += 1)}`, `faults-${index}-${sequence}`, 30_000);
        if (!ack.ok || ack.messageId === undefined) continue;
        inFlight.set(conversationId, ack.messageId);
        const reply = await client.waitForMessage((message) => message.role === 'bot' && message.conversationId === conversationId && !seen.has(message.messageId), 60_000).catch(() => undefined);
        if (reply !== undefined) answeredAt.set(ack.messageId, performance.now());
        inFlight.delete(conversationId);
      }
    });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    for (let kill = 0; kill < KILLS; kill += 1) {
      const pending = [...inFlight.values()];
      const killedAt = performance.now();
      workerA.child.kill('SIGKILL');
      await workerA.exited.catch(() => undefined);
      await waitUntil(() => pending.every((id) => answeredAt.has(id)), 60_000);
      results.push({ pending: pending.length, backAfterMs: pending.map((id) => (answeredAt.get(id) ?? Number.NaN) - killedAt) });
      workerA = startWorker(env);
      // Time for A to start (tsx) and take jobs again before the next kill.
      await new Promise((resolve) => setTimeout(resolve, 10_000));
    }
    stop = true;
    await Promise.race([Promise.all(stream), new Promise((resolve) => setTimeout(resolve, 30_000))]);
  } finally {
    closeAllClients();
    await signOutAll();
    await Promise.allSettled([workerA.stop('SIGTERM', 15_000), workerB.stop('SIGTERM', 15_000)]);
    await api.stop();
    await database.destroy();
    await llm.stop();
    await cleanupProcesses();
  }
  process.stdout.write(`\nfaults: ${CLIENTS} clients streaming to an LLM bot (~1 s per reply), 2 reply workers, worker A SIGKILLed ${KILLS} times; BOTSERVER_JOB_LOCK_MS=${JOB_LOCK_MS}\n\n`);
  process.stdout.write(
    table([
      ['kill', 'unanswered at the kill', 'answered after (p50 ms)', 'answered after (max ms)'],
      ...results.map((result, index) => {
        const times = result.backAfterMs.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
        const lost = result.backAfterMs.length - times.length;
        return [String(index + 1), String(result.pending), times.length === 0 ? '-' : String(round1(percentile(times, 50))), times.length === 0 ? '-' : `${round1(times.at(-1) ?? 0)}${lost > 0 ? ` (${lost} never)` : ''}`];
      }),
    ]),
  );
  process.stdout.write('\nThe messages a killed worker held come back once its lock lapses and a stalled-job check runs: at most about 1.5 x BOTSERVER_JOB_LOCK_MS after the kill; the others were with worker B and are not delayed.\n');
  return 0;
}
