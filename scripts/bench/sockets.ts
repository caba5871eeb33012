import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { SessionStore } from '../../api/auth/sessions.js';
import { TokenService } from '../../api/auth/tokens.js';
import { generateJwtPrivateKeyPem } from '../../shared/config/index.js';
import { Keys } from '../../shared/keys.js';
import { createTestUser } from '../../test/helpers/api.js';
import { randomHexKey, testConfig } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { CLI_PATH, cleanupProcesses, freePort, makeTempDir, startCli, startPrivateRedis, waitForHttpOk, type EnvOverrides, type PrivateRedis } from '../../test/helpers/process.js';
import { rssBytes } from './processStats.js';
import { round1, table } from './stats.js';

/**
 * Sockets benchmark: what an idle authenticated socket costs the API process, beside a bare Socket.IO server with
 * the Redis adapter measured in the same run. For each count N, a fresh `botserver api` (private Redis, throwaway
 * database) and a fresh bare server each get N sockets from a client process of their own; each socket has a
 * session of its own (ours: an access token of a live session, joined to a conversation of its user; bare: any
 * token, joined to a room). Per socket = (RSS with N sockets, settled − RSS after a warm-up) ÷ N.
 */

const DEFAULT_COUNTS = [2000, 10_000];
const WARM_UP_SOCKETS = 100;
const SETTLE_MS = 5000;
/** The socket event budget's window (api/socket/handlers.ts). */
const WINDOW_MS = 10_000;
const CLIENTS_SCRIPT = fileURLToPath(new URL('./socketClients.ts', import.meta.url));
const BARE_SERVER_SCRIPT = fileURLToPath(new URL('./bareSocketServer.ts', import.meta.url));
/** Node options of both servers: SIGUSR2 collects garbage (see gcOnSignal.ts). */
const GC_ON_SIGNAL = ['--expose-gc', '--import', fileURLToPath(new URL('./gcOnSignal.ts', import.meta.url))];

interface SocketSpec {
  token: string;
  room: string;
}

interface Server {
  pid: number;
  url: string;
  event: 'conversation:join' | 'join';
  /** Where the server writes its memory usage on SIGUSR2. */
  memoryFile: string;
  stop(): Promise<void>;
}

interface Measured {
  startRss: number;
  idle: Memory;
  loaded: Memory;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function parseCounts(args: string[]): number[] | undefined {
  if (args.length === 0) return DEFAULT_COUNTS;
  const [flag, value] = args;
  if (flag !== '--counts' || value === undefined || args.length !== 2) return undefined;
  const counts = value.split(',').map(Number);
  return counts.every((count) => Number.isInteger(count) && count > 0 && count <= 15_000) ? counts : undefined;
}

function lineFrom(child: ChildProcess, prefix: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`no "${prefix}" within ${timeoutMs} ms: ${output.slice(-500)}`)), timeoutMs);
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const line = output.split('\n').find((candidate) => candidate.startsWith(prefix) || candidate.startsWith('failed:'));
      if (line === undefined) return;
      clearTimeout(timer);
      if (line.startsWith('failed:')) reject(new Error(line));
      else resolve(line.slice(prefix.length).trim());
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code ?? 'signal'}) before "${prefix}": ${output.slice(-500)}`));
    });
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** A client process holding `sockets` connected and joined; resolves once all are, with a way to close them. */
async function connectClients(server: Server, sockets: SocketSpec[]): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLIENTS_SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] });
  const ready = lineFrom(child, 'ready', 600_000);
  child.stdin.end(JSON.stringify({ url: server.url, event: server.event, sockets }));
  try {
    await ready;
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return () => stopChild(child);
}

async function startOurs(env: EnvOverrides): Promise<Server> {
  const port = await freePort();
  const memoryFile = join(makeTempDir('botserver-bench-memory-'), 'memory.json');
  const cli = startCli(['api'], { ...env, BOTSERVER_PORT: String(port), BENCH_MEMORY_FILE: memoryFile }, { nodeArgs: ['--import', 'tsx', ...GC_ON_SIGNAL], path: CLI_PATH });
  const url = `http://127.0.0.1:${port}`;
  await waitForHttpOk(cli, `${url}/readyz`, 120_000);
  return { pid: cli.child.pid ?? 0, url, event: 'conversation:join', memoryFile, stop: async () => void (await cli.stop('SIGTERM', 30_000)) };
}

async function startBare(redisUrl: string): Promise<Server> {
  const memoryFile = join(makeTempDir('botserver-bench-memory-'), 'memory.json');
  const child = spawn(process.execPath, ['--import', 'tsx', ...GC_ON_SIGNAL, BARE_SERVER_SCRIPT, redisUrl], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, BENCH_MEMORY_FILE: memoryFile } });
  const port = await lineFrom(child, 'port', 60_000);
  return { pid: child.pid ?? 0, url: `http://127.0.0.1:${port}`, event: 'join', memoryFile, stop: () => stopChild(child) };
}

interface Memory {
  rss: number;
  /** V8 heap in use plus memory outside it (buffers): the live objects, whatever the allocators keep. */
  live: number;
}

/** Memory once the process has collected its garbage (and let a moment pass for it); see gcOnSignal.ts. */
async function settledMemory(server: Server): Promise<Memory> {
  await sleep(SETTLE_MS);
  rmSync(server.memoryFile, { force: true });
  process.kill(server.pid, 'SIGUSR2');
  // The file appears once the collection is over (a second or more on a busy machine with a large heap).
  for (let waited = 0; !existsSync(server.memoryFile); waited += 100) {
    if (waited > 60_000) throw new Error(`no memory report from process ${server.pid}`);
    await sleep(100);
  }
  await sleep(200);
  const usage = JSON.parse(readFileSync(server.memoryFile, 'utf8')) as { heapUsed: number; external: number };
  return { rss: rssBytes(server.pid), live: usage.heapUsed + usage.external };
}

async function measure(start: () => Promise<Server>, sockets: SocketSpec[]): Promise<Measured> {
  const server = await start();
  try {
    const startRss = rssBytes(server.pid);
    const closeWarmUp = await connectClients(server, sockets.slice(0, WARM_UP_SOCKETS));
    await closeWarmUp();
    const idle = await settledMemory(server);
    const close = await connectClients(server, sockets);
    // Past the event budget's window, so the joins' rate-limit entries have expired as they do on an idle socket.
    await sleep(WINDOW_MS);
    const loaded = await settledMemory(server);
    await close();
    return { startRss, idle, loaded };
  } finally {
    await server.stop();
  }
}

/** N conversations of one visitor and N sessions of theirs, each with an access token: the sockets' credentials. */
async function credentials(database: TestDatabase, env: EnvOverrides, count: number): Promise<SocketSpec[]> {
  const config = testConfig(Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] => entry[1] !== undefined)));
  const keys = new Keys(config.secrets);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  try {
    const user = await createTestUser(config, { role: 'user' });
    const [bot] = await database.ownerDb('bots').insert({ tenant_id: user.tenantId, name: 'Sockets bench bot' }).returning<Array<{ id: string }>>('id');
    const conversations: string[] = [];
    for (let index = 0; index < count; index += 1000) {
      const rows = Array.from({ length: Math.min(1000, count - index) }, () => ({ tenant_id: user.tenantId, bot_id: bot?.id, user_id: user.id, channel: 'web' }));
      conversations.push(...(await database.ownerDb('conversations').insert(rows).returning<Array<{ id: string }>>('id')).map((row) => row.id));
    }
    const sessions = new SessionStore(redis, config.sessionTimeoutSeconds, keys.tokenHmacKey);
    const tokens = await TokenService.fromPem(keys.jwtPrivateKeyPem);
    return await Promise.all(
      conversations.map(async (room) => {
        const { session } = await sessions.create({ userId: user.id, tenantId: user.tenantId, roles: ['user'], mustChangePassword: false, mfaEnabled: false }, false);
        return { token: await tokens.sign({ sub: user.id, sid: session.sid, tid: user.tenantId, roles: session.roles }), room };
      }),
    );
  } finally {
    redis.disconnect();
    keys.zeroize();
  }
}

const kb = (bytes: number): string => String(round1(bytes / 1024));
const mb = (bytes: number): string => String(round1(bytes / 1024 / 1024));

export async function run(args: string[]): Promise<number> {
  const counts = parseCounts(args);
  if (counts === undefined) {
    process.stderr.write('usage: npm run bench -- sockets [--counts 2000,10000]\n');
    return 2;
  }
  let database: TestDatabase | undefined;
  let redis: PrivateRedis | undefined;
  try {
    [database, redis] = await Promise.all([createTestDatabase(), freePort().then((port) => startPrivateRedis(port))]);
    const env: EnvOverrides = {
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      BOTSERVER_DATA_DIR: makeTempDir('botserver-bench-data-'),
      BOTSERVER_JWT_SECRET: randomHexKey(),
      BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
      DATABASE_ENCRYPTION_KEY: randomHexKey(),
      BOTSERVER_JWT_PRIVATE_KEY: generateJwtPrivateKeyPem(),
      LOG_LEVEL: 'info',
    };
    const specs = await credentials(database, env, Math.max(...counts));
    const redisUrl = redis.url;
    const rows: string[][] = [];
    const json: Array<Record<string, number>> = [];
    for (const count of counts) {
      const sockets = specs.slice(0, count);
      const ours = await measure(() => startOurs(env), sockets);
      const bare = await measure(() => startBare(redisUrl), sockets);
      const per = (run: Measured, what: keyof Memory): number => (run.loaded[what] - run.idle[what]) / count;
      const ratio = Math.round((per(ours, 'rss') / per(bare, 'rss')) * 100) / 100;
      const liveRatio = Math.round((per(ours, 'live') / per(bare, 'live')) * 100) / 100;
      rows.push([String(count), kb(per(ours, 'rss')), kb(per(bare, 'rss')), String(ratio), kb(per(ours, 'live')), kb(per(bare, 'live')), String(liveRatio), mb(ours.startRss), mb(bare.startRss)]);
      json.push({ sockets: count, oursRssPerSocket: Math.round(per(ours, 'rss')), bareRssPerSocket: Math.round(per(bare, 'rss')), ratio, oursLivePerSocket: Math.round(per(ours, 'live')), bareLivePerSocket: Math.round(per(bare, 'live')), liveRatio, oursStartRss: ours.startRss, bareStartRss: bare.startRss });
    }
    process.stdout.write(
      [
        `sockets benchmark  node ${process.version}, ${availableParallelism()} CPU(s); idle sockets (websocket), each with a session of its own, joined to one room; clients in another process`,
        '',
        table([['sockets', 'API RSS KB/socket', 'bare RSS KB/socket', 'API ÷ bare', 'API live KB/socket', 'bare live KB/socket', 'API ÷ bare', 'API start MB', 'bare start MB'], ...rows]),
        '(per socket = growth from after a warm-up of 100 sockets to N sockets connected and idle, ÷ N, each read after a full GC;',
        ' RSS as the system counts it, live = V8 heap used + external memory, what the sockets hold whatever the allocators keep)',
        JSON.stringify({ bench: 'sockets', results: json }),
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    await cleanupProcesses();
    await database?.destroy();
  }
}
