import { benchProcessEnv } from './chatProcesses.js';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import type { Socket } from 'socket.io-client';
import { withDatabaseName } from '../../shared/db/index.js';
import { REPLY_CONCURRENCY } from '../../workers/reply.js';
import { closeAllClients, connectClient, createBot, createConversation, signedInUser, signOutAll, type ChatClient, type AckResponse, type MessageNewEvent } from '../../test/helpers/chat.js';
import { testConfig } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { CLI_PATH, cleanupProcesses, freePort, startCli, startPrivateRedis, waitForHttpOk, type CliEntry, type EnvOverrides, type PrivateRedis, type RunningCli } from '../../test/helpers/process.js';
import { startPrivatePostgres, type PrivateService } from '../../test/helpers/private-services.js';
import { PAYLOAD_CHARS, startBareLoop } from './bullmqBaseline.js';
import { summariseProfile } from './cpuProfile.js';
import { paced, perSecond, saturate, type LoadRun, type LoadTarget } from './load.js';
import { ProcessMeter, writeCalls } from './processStats.js';
import { countStatements, RedisCommandCounter, resetStatements, type RedisTraffic, type StatementCount } from './roundTrips.js';
import { percentile, round1, table } from './stats.js';

/**
 * Chat benchmark, as deployed: a `botserver api` process, a `botserver worker reply` and a `botserver worker audit`
 * process, on a private Redis and a throwaway database; the clients in this process. L conversations (lanes) with
 * a rule bot over C authenticated sockets, one message in flight per conversation, each message 300 characters.
 * It measures the most replies per second (closed loop, L in flight), then latency at half that rate (open loop),
 * then the same two for a bare BullMQ loop on the same Redis (a worker in another process, the same payload size,
 * the same lanes): the floor under the chat. `--profile DIR`: PostgreSQL is a private server with
 * pg_stat_statements, the API, reply and audit workers write CPU profiles to DIR, and a counting phase reports the Redis
 * round trips and SQL statements of one message, per process.
 */

const DEFAULT_CLIENTS = 50;
const DEFAULT_LANES = 200;
const DEFAULT_SECONDS = 10;
/**
 * Load before each measured phase. Freshly started processes run their code unoptimised until V8 has compiled the
 * hot paths: measured here, an audit worker spent 1.4 ms of CPU per event in its first 8 s under load, 0.76 ms after
 * 30 s. A server runs for days, so the phases measure warm processes (the bare loop gets the same warm-up).
 */
const DEFAULT_WARM_UP_SECONDS = 20;
const COUNTED_MESSAGES = 1000;
const REPLY_TIMEOUT_MS = 30_000;

export interface Options {
  clients: number;
  lanes: number;
  seconds: number;
  /** Seconds of load before each measured phase. */
  warmUp: number;
  profileDir?: string;
  /** Set: the scale-out comparison of chatProcesses.ts (A APIs and W reply workers against 1 and 1). */
  processes?: { api: number; workers: number };
  /** For the scale-out comparison: messages per client. */
  messages: number;
}

function usage(): string {
  return (
    `usage: npm run bench -- chat [--clients C (default ${DEFAULT_CLIENTS})] [--lanes L (conversations in flight, default ${DEFAULT_LANES})]\n` +
    `                            [--seconds S (per phase, default ${DEFAULT_SECONDS})] [--warm-up S (load before measuring, default ${DEFAULT_WARM_UP_SECONDS})]\n` +
    `                            [--profile DIR (CPU profiles, Redis and SQL round trips)]\n` +
    '       npm run bench -- chat --api A --workers W [--clients N] [--messages M]   (scale-out: A APIs and W reply workers vs 1 and 1)\n'
  );
}

function parseArgs(args: string[]): Options | undefined {
  const options: Options = { clients: DEFAULT_CLIENTS, lanes: DEFAULT_LANES, seconds: DEFAULT_SECONDS, warmUp: DEFAULT_WARM_UP_SECONDS, messages: 20 };
  let api: number | undefined;
  let workers: number | undefined;
  for (let index = 0; index < args.length; index += 1) {
    const [flag, inline] = (args[index] ?? '').split('=', 2);
    const value = inline ?? args[(index += 1)];
    if (value === undefined) return undefined;
    if (flag === '--profile') {
      options.profileDir = resolve(value);
      continue;
    }
    const count = Number(value);
    if (!/^\d+$/.test(value)) return undefined;
    if (flag === '--warm-up' && count <= 300) {
      options.warmUp = count;
      continue;
    }
    if (count < 1) return undefined;
    if (flag === '--clients' && count <= 2000) options.clients = count;
    else if (flag === '--lanes' && count <= 5000) options.lanes = count;
    else if (flag === '--seconds' && count <= 300) options.seconds = count;
    else if (flag === '--messages' && count <= 29) options.messages = count;
    else if (flag === '--api' && count <= 16) api = count;
    else if (flag === '--workers' && count <= 16) workers = count;
    else return undefined;
  }
  if (api !== undefined || workers !== undefined) options.processes = { api: api ?? 1, workers: workers ?? 1 };
  if (options.lanes < options.clients) options.lanes = options.clients;
  return options;
}

export interface ClientRun {
  latencies: number[];
  failures: string[];
}

/** One client's closed loop in one conversation (the scale-out comparison): send, wait for the bot's reply, repeat. */
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
      await client.waitForMessage((message) => message.role === 'bot' && message.conversationId === conversationId && !answered.has(message.messageId), REPLY_TIMEOUT_MS);
      latencies.push(performance.now() - started);
    } catch (error: unknown) {
      failures.push(error instanceof Error ? error.message.slice(0, 80) : String(error));
    }
  }
  return { latencies, failures };
}

/** A 300-character message the bot's rule answers; its number keeps it unique. */
function messageText(lane: number, sequence: number): string {
  const head = `opening hours? (${lane}.${sequence}) `;
  return head + 'lorem ipsum dolor sit amet '.repeat(12).slice(0, PAYLOAD_CHARS - head.length);
}

/** Lane i is conversation i, on socket i mod C; the answer to a message is the next bot message in its conversation. */
function chatTarget(sockets: Socket[], conversations: string[]): LoadTarget {
  const waiting = new Map<string, () => void>();
  for (const socket of sockets) {
    socket.on('message:new', (message: MessageNewEvent) => {
      if (message.role !== 'bot') return;
      const answered = waiting.get(message.conversationId);
      waiting.delete(message.conversationId);
      answered?.();
    });
  }
  let sequence = 0;
  return {
    lanes: conversations.length,
    async roundTrip(lane) {
      const conversationId = conversations[lane] as string;
      const socket = sockets[lane % sockets.length] as Socket;
      sequence += 1;
      let timer: NodeJS.Timeout | undefined;
      const answered = new Promise<void>((resolve, reject) => {
        waiting.set(conversationId, resolve);
        timer = setTimeout(() => reject(new Error('no reply within 30 s')), REPLY_TIMEOUT_MS);
      });
      answered.catch(() => undefined);
      try {
        const ack = (await socket.timeout(REPLY_TIMEOUT_MS).emitWithAck('message:send', { conversationId, text: messageText(lane, sequence), clientMessageId: `bench-${sequence}` })) as AckResponse;
        if (!ack.ok) throw new Error(ack.error);
        await answered;
      } finally {
        clearTimeout(timer);
        if (waiting.get(conversationId) !== undefined) waiting.delete(conversationId);
      }
    },
  };
}

interface Deployment {
  api: RunningCli;
  url: string;
  reply: RunningCli;
  audit: RunningCli;
}

async function startDeployment(env: EnvOverrides, profileDir: string | undefined): Promise<Deployment> {
  const profiled = (name: string): CliEntry =>
    // A folder per process: tsx's loader thread writes a profile of its own there too.
    profileDir === undefined ? { nodeArgs: ['--import', 'tsx'], path: CLI_PATH } : { nodeArgs: ['--import', 'tsx', '--cpu-prof', '--cpu-prof-dir', join(profileDir, name)], path: CLI_PATH };
  const [apiPort, replyPort, auditPort] = await Promise.all([freePort(), freePort(), freePort()]);
  const api = startCli(['api'], { ...env, BOTSERVER_PORT: String(apiPort) }, profiled('api'));
  const reply = startCli(['worker', 'reply'], { ...env, BOTSERVER_HEALTH_PORT: String(replyPort) }, profiled('reply'));
  const audit = startCli(['worker', 'audit'], { ...env, BOTSERVER_HEALTH_PORT: String(auditPort) }, profiled('audit'));
  const url = `http://127.0.0.1:${apiPort}`;
  await Promise.all([
    waitForHttpOk(api, `${url}/readyz`, 120_000),
    waitForHttpOk(reply, `http://127.0.0.1:${replyPort}/readyz`, 120_000),
    waitForHttpOk(audit, `http://127.0.0.1:${auditPort}/readyz`, 120_000),
  ]);
  return { api, url, reply, audit };
}

const pidOf = (cli: RunningCli): number => cli.child.pid ?? 0;

async function databasePids(database: TestDatabase): Promise<number[]> {
  const name = new URL(database.url).pathname.slice(1);
  const result = await database.ownerDb.raw<{ rows: Array<{ pid: number }> }>('SELECT pid FROM pg_stat_activity WHERE datname = ? AND pid <> pg_backend_pid()', [name]);
  return result.rows.map((row) => row.pid);
}

interface PhaseResult {
  max: LoadRun;
  half: LoadRun;
  /** CPU ms per answered message during the max phase, by process. */
  cpuPerMessage: Map<string, number>;
  /** Write system calls (each send on a socket) per answered message during the max phase, by process. */
  writesPerMessage: Map<string, number>;
  /** CLOCK_MONOTONIC µs of the max phase (to cut CPU profiles to it). */
  windowUs: [number, number];
}

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);
const round3 = (value: number): string => String(Math.round(value * 1000) / 1000);

async function measure(target: LoadTarget, processes: () => Map<string, number[]>, seconds: number, warmUpSeconds: number, halfRate: (max: LoadRun) => number): Promise<PhaseResult> {
  if (warmUpSeconds > 0) await saturate(target, warmUpSeconds * 1000);
  const withBench = (): Map<string, number[]> => new Map([...processes(), ['bench clients', [process.pid]]]);
  const cpuMeter = new ProcessMeter(withBench);
  const writeMeter = new ProcessMeter(withBench, writeCalls);
  cpuMeter.start();
  writeMeter.start();
  const from = monotonicUs();
  const max = await saturate(target, seconds * 1000);
  const to = monotonicUs();
  const perMessage = (totals: Map<string, number>): Map<string, number> => new Map([...totals].map(([name, value]) => [name, value / Math.max(1, max.completed)]));
  const cpuPerMessage = perMessage(cpuMeter.stop());
  const writesPerMessage = perMessage(writeMeter.stop());
  const half = await paced(target, halfRate(max), seconds * 1000);
  return { max, half, cpuPerMessage, writesPerMessage, windowUs: [from, to] };
}

interface Counted {
  messages: number;
  redis: Map<string, RedisTraffic>;
  statements: StatementCount[];
}

async function countRoundTrips(target: LoadTarget, redisUrl: string, database: TestDatabase, processes: Map<string, number[]>): Promise<Counted> {
  const counter = new RedisCommandCounter(redisUrl);
  await counter.start();
  await resetStatements(database.ownerDb);
  const run = await saturate(target, 120_000, COUNTED_MESSAGES);
  // The audit worker batches; give the last batch time to be written.
  await new Promise((done) => setTimeout(done, 500));
  const statements = await countStatements(database.ownerDb, new URL(database.url).pathname.slice(1));
  const redis = counter.stop(processes);
  if (counter.failure !== undefined) throw new Error(`the Redis MONITOR stream broke (${counter.failure}): no round trips to report`);
  return { messages: run.completed, redis, statements };
}

function latencyCells(run: LoadRun): string[] {
  return [String(round1(percentile(run.latencies, 50))), String(round1(percentile(run.latencies, 99)))];
}

function countedReport(counted: Counted): string[] {
  const per = (value: number): string => String(Math.round((value / counted.messages) * 100) / 100);
  const redisRows = [...counted.redis].sort((a, b) => b[1].roundTrips - a[1].roundTrips).map(([name, traffic]) => [
    name,
    per(traffic.roundTrips),
    [...traffic.commands].sort((a, b) => b[1] - a[1]).map(([command, count]) => `${command} ${per(count)}`).join(', '),
  ]);
  const byRole = new Map<string, number>();
  for (const statement of counted.statements) byRole.set(statement.role, (byRole.get(statement.role) ?? 0) + statement.calls);
  const statementRows = counted.statements
    .filter((statement) => statement.calls >= counted.messages / 20)
    .map((statement) => [statement.role, per(statement.calls), String(Math.round(statement.meanMs * 1000) / 1000), statement.query.slice(0, 110)]);
  return [
    `round trips of one message (${counted.messages} messages counted)`,
    table([['Redis client', 'round trips/msg', 'commands/msg'], ...redisRows]),
    '',
    table([['PostgreSQL role', 'statements/msg'], ...[...byRole].map(([role, calls]) => [role, per(calls)])]),
    '',
    table([['role', 'calls/msg', 'mean ms', 'statement'], ...statementRows]),
  ];
}

/** The main thread's profile in a process's folder: the largest one (the loader thread's is small). */
function mainThreadProfile(dir: string): string {
  const files = readdirSync(dir).filter((file) => file.endsWith('.cpuprofile')).map((file) => join(dir, file));
  const largest = files.sort((a, b) => statSync(b).size - statSync(a).size)[0];
  if (largest === undefined) throw new Error(`no .cpuprofile in ${dir}`);
  return largest;
}

function profileReport(profileDir: string, windowUs: [number, number]): string[] {
  const lines: string[] = [];
  for (const name of ['api', 'reply', 'audit']) {
    try {
      const summary = summariseProfile(mainThreadProfile(join(profileDir, name)), windowUs[0], windowUs[1], 20);
      lines.push(
        '',
        `CPU profile of ${name} during the max phase: ${summary.totalMs} ms sampled (self time)`,
        table([['package', 'ms'], ...summary.byPackage.map(([pkg, ms]) => [pkg, String(ms)])]),
        table([['function', 'ms'], ...summary.byFunction.map(([fn, ms]) => [fn, String(ms)])]),
      );
    } catch (error) {
      lines.push(`no CPU profile of ${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return lines;
}

/** A fresh server takes connections a moment before it takes queries ("the database system is starting up"). */
async function untilPostgresAnswers(url: string): Promise<void> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: withDatabaseName(url, 'postgres') });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return;
    } catch (error) {
      if (performance.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

export async function run(args: string[]): Promise<number> {
  const options = parseArgs(args);
  if (options === undefined) {
    process.stderr.write(usage());
    return 2;
  }
  if (options.processes !== undefined) return (await import('./chatProcesses.js')).runWithProcesses(options.clients, options.messages, options.processes);
  let database: TestDatabase | undefined;
  let redis: PrivateRedis | undefined;
  let postgres: PrivateService | undefined;
  let deployment: Deployment | undefined;
  const profileDir = options.profileDir;
  try {
    if (profileDir !== undefined) {
      mkdirSync(profileDir, { recursive: true });
      postgres = await startPrivatePostgres({ shared_preload_libraries: 'pg_stat_statements', 'pg_stat_statements.track_utility': 'on' });
      process.env.DATABASE_URL = postgres.url;
      await untilPostgresAnswers(postgres.url);
    }
    [database, redis] = await Promise.all([createTestDatabase(), freePort().then((port) => startPrivateRedis(port))]);
    if (profileDir !== undefined) await database.ownerDb.raw('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const env: EnvOverrides = {
      ...benchProcessEnv(database.url, redis.url),
      // As in production: a per-message log line at `info` would show here.
      LOG_LEVEL: 'info',
      // Every lane's messages come from a few sockets of one account on 127.0.0.1: keep the limits out of it.
      BOTSERVER_WS_RATE_LIMIT: '100000000',
      BOTSERVER_RATE_LIMIT_PER_IP: '100000000',
      BOTSERVER_RATE_LIMIT_PER_USER: '100000000',
    };
    const config = testConfig(Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined)));
    const running = await startDeployment(env, profileDir);
    deployment = running;
    const admin = await signedInUser({ url: running.url, config }, 'admin');
    const botId = await createBot(running.url, admin, { name: 'Bench bot', rules: [{ match: 'opening hours', reply: 'We open at 9.' }] });
    const conversations = await Promise.all(Array.from({ length: options.lanes }, () => createConversation(running.url, admin, botId)));
    const clients = await Promise.all(Array.from({ length: options.clients }, () => connectClient(running.url, { token: admin.token, timeoutMs: 15_000 })));
    await Promise.all(
      conversations.map(async (conversationId, lane) => {
        const joined = await (clients[lane % clients.length] as ChatClient).join(conversationId, undefined, 15_000);
        if (!joined.ok) throw new Error(`join failed: ${joined.error}`);
      }),
    );
    const target = chatTarget(
      clients.map((client) => client.socket),
      conversations,
    );
    const pgPids = await databasePids(database);
    const chatProcesses = (): Map<string, number[]> =>
      new Map([
        ['api', [pidOf(running.api)]],
        ['reply worker', [pidOf(running.reply)]],
        ['audit worker', [pidOf(running.audit)]],
        ['redis-server', [redis?.pid ?? 0]],
        ['postgres (this database)', pgPids],
      ]);
    const chat = await measure(target, chatProcesses, options.seconds, options.warmUp, (max) => perSecond(max) / 2);
    pgPids.splice(0, pgPids.length, ...(await databasePids(database)));
    const counted = profileDir === undefined ? undefined : await countRoundTrips(target, redis.url, database, new Map([...chatProcesses(), ['bench clients', [process.pid]]]));
    closeAllClients();
    await signOutAll();
    await Promise.allSettled([running.api, running.reply, running.audit].map((cli) => cli.stop('SIGTERM', 30_000)));
    deployment = undefined;

    const chatMax = perSecond(chat.max);
    const bare = await startBareLoop(redis.url, REPLY_CONCURRENCY);
    let baseline: PhaseResult;
    try {
      const bareProcesses = (): Map<string, number[]> => new Map([['bare worker', [bare.workerPid]], ['redis-server', [redis?.pid ?? 0]]]);
      baseline = await measure(bare.target(options.lanes), bareProcesses, options.seconds, options.warmUp, () => chatMax / 2);
    } finally {
      await bare.close();
    }
    const bareMax = perSecond(baseline.max);
    const ratio = Math.round((chatMax / bareMax) * 1000) / 1000;
    const result = {
      bench: 'chat',
      node: process.version,
      cpus: availableParallelism(),
      clients: options.clients,
      lanes: options.lanes,
      seconds: options.seconds,
      warmUpSeconds: options.warmUp,
      replies: chat.max.completed,
      failures: chat.max.failures.length + chat.half.failures.length,
      repliesPerSecond: round1(chatMax),
      maxP50Ms: round1(percentile(chat.max.latencies, 50)),
      maxP99Ms: round1(percentile(chat.max.latencies, 99)),
      halfRate: round1(chatMax / 2),
      halfP50Ms: round1(percentile(chat.half.latencies, 50)),
      halfP99Ms: round1(percentile(chat.half.latencies, 99)),
      baselineJobsPerSecond: round1(bareMax),
      baselineHalfP50Ms: round1(percentile(baseline.half.latencies, 50)),
      baselineHalfP99Ms: round1(percentile(baseline.half.latencies, 99)),
      ratioToBaseline: ratio,
      p99RatioAtHalf: Math.round((percentile(chat.half.latencies, 99) / percentile(baseline.half.latencies, 99)) * 100) / 100,
      cpuMsPerMessage: Object.fromEntries([...chat.cpuPerMessage].map(([name, ms]) => [name, Number(round3(ms))])),
      writeCallsPerMessage: Object.fromEntries([...chat.writesPerMessage].map(([name, calls]) => [name, Number(round3(calls))])),
      baselineCpuMsPerJob: Object.fromEntries([...baseline.cpuPerMessage].map(([name, ms]) => [name, Number(round3(ms))])),
    };
    const out = [
      `chat benchmark  node ${process.version}, ${availableParallelism()} CPU(s) shared by every process below (and whatever else runs on the machine)`,
      `API, reply worker and audit worker processes, measured after ${options.warmUp} s of load; ${options.clients} sockets, ${options.lanes} conversations (one message in flight each), ${PAYLOAD_CHARS}-character messages, rule bot`,
      '',
      table([
        ['', 'answered', 'failures', 'per s', 'p50 ms', 'p99 ms', `at half (${round1(chatMax / 2)}/s): p50 ms`, 'p99 ms'],
        ['chat (send → bot reply on the socket)', String(chat.max.completed), String(result.failures), String(result.repliesPerSecond), ...latencyCells(chat.max), ...latencyCells(chat.half)],
        ['bare BullMQ (add → other process → pub/sub)', String(baseline.max.completed), String(baseline.max.failures.length + baseline.half.failures.length), String(result.baselineJobsPerSecond), ...latencyCells(baseline.max), ...latencyCells(baseline.half)],
      ]),
      '',
      `chat ÷ bare: ${ratio} (replies/s); p99 at half load: ${result.p99RatioAtHalf} × the bare loop's`,
      '',
      table([
        ['per message (max phase)', ...chat.cpuPerMessage.keys()],
        ['chat: CPU ms', ...[...chat.cpuPerMessage.values()].map(round3)],
        ['chat: write calls', ...[...chat.writesPerMessage.values()].map(round3)],
      ]),
      table([
        ['per job (max phase)', ...baseline.cpuPerMessage.keys()],
        ['bare: CPU ms', ...[...baseline.cpuPerMessage.values()].map(round3)],
        ['bare: write calls', ...[...baseline.writesPerMessage.values()].map(round3)],
      ]),
    ];
    if (counted !== undefined) out.push('', ...countedReport(counted));
    if (profileDir !== undefined) out.push(...profileReport(profileDir, chat.windowUs));
    const failures = [...chat.max.failures, ...chat.half.failures];
    if (failures.length > 0) out.push(`failures: ${[...new Set(failures)].slice(0, 5).join('; ')}`);
    process.stdout.write(`${out.join('\n')}\n${JSON.stringify(result)}\n`);
    return failures.length === 0 ? 0 : 1;
  } finally {
    closeAllClients();
    await signOutAll();
    if (deployment !== undefined) await Promise.allSettled([deployment.api, deployment.reply, deployment.audit].map((cli) => cli.stop('SIGTERM', 30_000)));
    await cleanupProcesses();
    await database?.destroy();
    await postgres?.destroy();
  }
}

