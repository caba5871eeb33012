import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../shared/config/index.js';

/**
 * Child processes for integration tests: the botserver CLI (one-shot or long-running) and a private redis-server.
 * Every child and every temp dir made here is tracked; `cleanupProcesses()` (call it in an `after` hook) kills
 * what is still running and removes the dirs, and a process `exit` handler does the same as a last resort.
 */

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_PATH = join(REPO_ROOT, 'scripts', 'cli.ts');

/** Environment overrides for a child; `undefined` removes a variable. */
export type EnvOverrides = Record<string, string | undefined>;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Variables of the parent that would leak configuration into a child (the suite's own DATABASE_URL etc.). */
const CONFIG_PREFIXES = ['BOTSERVER_', 'ZITADEL_', 'LLM_', 'EMBEDDINGS_', 'QDRANT_', 'S3_', 'AWS_'];
const CONFIG_NAMES = ['NODE_ENV', 'LOG_LEVEL', 'DATABASE_URL', 'DATABASE_ENCRYPTION_KEY', 'REDIS_URL'];

/** A fresh private temp dir (mode 0700), removed by `cleanupProcesses()`. */
export function makeTempDir(prefix = 'botserver-proc-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/**
 * What a child process must share with the test's own server to work on its data: the database, Redis, the data
 * directory (staging) and the three keys.
 */
export function sharedSettingsEnv(config: Pick<Config, 'databaseUrl' | 'redisUrl' | 'dataDir' | 'secrets'>): Record<string, string> {
  return {
    DATABASE_URL: config.databaseUrl,
    REDIS_URL: config.redisUrl,
    BOTSERVER_DATA_DIR: config.dataDir,
    BOTSERVER_JWT_SECRET: config.secrets.jwtSecret,
    BOTSERVER_ENCRYPTION_KEY: config.secrets.encryptionKey,
    DATABASE_ENCRYPTION_KEY: config.secrets.databaseEncryptionKey,
  };
}

/**
 * The child's environment: the parent's minus every botserver setting, then `NODE_ENV=test`, `LOG_LEVEL=warn`,
 * large rate-limit budgets, a fresh `BOTSERVER_DATA_DIR`, then the overrides.
 */
export function childEnv(overrides: EnvOverrides = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (CONFIG_NAMES.includes(name) || CONFIG_PREFIXES.some((prefix) => name.startsWith(prefix))) continue;
    env[name] = value;
  }
  // Not configuration: the AWS SDK's Node-version notice, silenced by npm test, stays silenced in children.
  const awsNotice = process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED;
  if (awsNotice !== undefined) env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = awsNotice;
  env.NODE_ENV = 'test';
  env.LOG_LEVEL = 'warn';
  // Every test client comes from 127.0.0.1: budgets large enough for a suite; rate-limit tests set their own.
  env.BOTSERVER_RATE_LIMIT_PER_IP = '100000';
  env.BOTSERVER_RATE_LIMIT_PER_USER = '1000000';
  if (!('BOTSERVER_DATA_DIR' in overrides)) env.BOTSERVER_DATA_DIR = makeTempDir('botserver-proc-data-');
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/** How a child runs botserver: the TypeScript CLI through tsx (the default) or a compiled build's `scripts/cli.js`. */
export interface CliEntry {
  nodeArgs: string[];
  path: string;
}
export const TSX_CLI: CliEntry = { nodeArgs: ['--import', 'tsx'], path: CLI_PATH };
/** The CLI of `npm run build -- --out-dir DIR`. */
export function compiledCli(dir: string): CliEntry {
  return { nodeArgs: [], path: join(dir, 'scripts', 'cli.js') };
}

function spawnCli(args: readonly string[], overrides: EnvOverrides, entry: CliEntry = TSX_CLI): ChildProcess {
  const child = spawn(process.execPath, [...entry.nodeArgs, entry.path, ...args], {
    cwd: REPO_ROOT,
    env: childEnv(overrides),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

interface Collected {
  stdout: string;
  stderr: string;
}

function collect(child: ChildProcess): Collected {
  const collected: Collected = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (collected.stdout += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (collected.stderr += chunk));
  return collected;
}

/** Resolves once the child has exited and its output streams are drained. */
function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
}

/** Runs `botserver <args>` to completion; kills it and rejects when it takes longer than `timeoutMs`. */
export async function runCli(args: readonly string[], env: EnvOverrides = {}, timeoutMs = 30_000, entry: CliEntry = TSX_CLI): Promise<CliResult> {
  const child = spawnCli(args, env, entry);
  const output = collect(child);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`botserver ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${output.stdout}\nstderr: ${output.stderr}`));
    }, timeoutMs);
  });
  try {
    const { code, signal } = await Promise.race([exitOf(child), timeout]);
    return { code, signal, ...output };
  } finally {
    clearTimeout(timer);
  }
}

export interface RunningCli {
  child: ChildProcess;
  /** Everything written so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Settles when the process has exited (by itself or by `stop`). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /**
   * Sends `signal` and resolves with the exit code (null when a signal ended it). If the process is still running
   * after `timeoutMs`, it is killed with SIGKILL and the promise rejects.
   */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** Starts a long-running `botserver <args>` (api, worker) and collects its output. */
export function startCli(args: readonly string[], env: EnvOverrides = {}, entry: CliEntry = TSX_CLI): RunningCli {
  const child = spawnCli(args, env, entry);
  const output = collect(child);
  const exited = exitOf(child);
  exited.catch(() => undefined); // a spawn error surfaces through `stop` or `exited`
  return {
    child,
    get stdout() {
      return output.stdout;
    },
    get stderr() {
      return output.stderr;
    },
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`botserver ${args.join(' ')} did not exit within ${timeoutMs} ms of ${signal}\nstderr: ${output.stderr}`));
        }, timeoutMs);
      });
      try {
        return (await Promise.race([exited, timeout])).code;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * Polls `url` until it answers 2xx; fails at once (with the child's stderr) if the process exits meanwhile.
 */
export async function waitForHttpOk(cli: RunningCli, url: string, timeoutMs = 30_000): Promise<void> {
  const state = await waitFor(async () => {
    if (cli.child.exitCode !== null || cli.child.signalCode !== null) return 'exited';
    const response = await fetch(url);
    return response.ok ? 'ok' : false;
  }, timeoutMs);
  if (state === 'exited') {
    throw new Error(`the process exited (code ${String(cli.child.exitCode)}) before ${url} answered\nstderr: ${cli.stderr}`);
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('no port assigned'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls `fn` until it returns something other than undefined/false (without throwing) and resolves with it.
 * Rejects after `timeoutMs` with the last error or value in the message.
 */
export async function waitFor<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: string;
  for (;;) {
    try {
      const value = await fn();
      if (value !== undefined && value !== false) return value;
      last = `returned ${String(value)}`;
    } catch (error: unknown) {
      last = `threw ${error instanceof Error ? error.message : String(error)}`;
    }
    if (Date.now() >= deadline) throw new Error(`waitFor: condition not met within ${timeoutMs} ms (last attempt ${last})`);
    await sleep(intervalMs);
  }
}

/** True while `pid` is a live process (a zombie, exited but not yet reaped, counts as dead). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Sends PING over a raw TCP connection; true when the answer is +PONG. */
export function redisPing(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let answer = '';
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      answer += chunk.toString('utf8');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
  });
}

export interface PrivateRedis {
  port: number;
  url: string;
  pid: number;
  /** Kills the server by PID (SIGKILL by default: an outage, not a shutdown) and waits until it is gone. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Spawns a tracked `redis-server` and waits until it says it is ready and answers PING on `port`. */
async function spawnRedis(args: readonly string[], port: number, cwd: string, readyLine = 'Ready to accept connections'): Promise<PrivateRedis> {
  const child = spawn('redis-server', [...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const output = collect(child);
  const pid = child.pid;
  if (pid === undefined) throw new Error('redis-server could not be started');
  // Our own server must say it is ready (another Redis may already answer on a busy port) and answer PING.
  const state = await waitFor(async () => {
    if (child.exitCode !== null || child.signalCode !== null || !isAlive(pid)) return 'exited';
    return output.stdout.includes(readyLine) && (await redisPing(port)) ? 'ready' : false;
  }, 10_000).catch((error: unknown) => (error instanceof Error ? error.message : String(error)));
  if (state !== 'ready') {
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    throw new Error(`redis-server on port ${port} did not start (${state})\n${output.stdout}${output.stderr}`);
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    pid,
    async stop(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
      if (isAlive(pid)) process.kill(pid, signal);
      await waitFor(() => !isAlive(pid), 10_000, 50);
    },
  };
}

/**
 * Starts `redis-server` on 127.0.0.1:`port`, without persistence, as a child of this process; waits for PONG.
 * `replicaOf`: a replica of the server on that port.
 */
export async function startPrivateRedis(port: number, options: { replicaOf?: number } = {}): Promise<PrivateRedis> {
  const replica = options.replicaOf === undefined ? [] : ['--replicaof', '127.0.0.1', String(options.replicaOf)];
  return spawnRedis(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...replica], port, makeTempDir('botserver-proc-redis-'));
}

/** Starts a Redis Sentinel on 127.0.0.1:`port` that monitors the master `name` on `masterPort` (quorum 1). */
export async function startRedisSentinel(port: number, name: string, masterPort: number): Promise<PrivateRedis> {
  const dir = makeTempDir('botserver-proc-sentinel-');
  const configPath = join(dir, 'sentinel.conf');
  // Sentinel rewrites its configuration file, so it gets one of its own in its own folder.
  writeFileSync(
    configPath,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      'daemonize no',
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
      `sentinel down-after-milliseconds ${name} 1000`,
      `sentinel failover-timeout ${name} 5000`,
      '',
    ].join('\n'),
  );
  return spawnRedis([configPath, '--sentinel'], port, dir, `+monitor master ${name} `);
}

/** Kills every child still running (SIGKILL) and removes every temp dir made by these helpers. */
export async function cleanupProcesses(): Promise<void> {
  const running = [...children];
  await Promise.all(
    running.map(async (child) => {
      if (child.pid !== undefined && isAlive(child.pid)) child.kill('SIGKILL');
      if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
    }),
  );
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.once('exit', () => {
  for (const child of children) if (child.pid !== undefined && isAlive(child.pid)) child.kill('SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
