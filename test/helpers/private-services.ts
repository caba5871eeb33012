import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './process.js';

/**
 * A private Redis and a private PostgreSQL, each in a temp dir on a free loopback port, that a test may crash
 * (SIGKILL to its process group) and start again on the same data (the AOF or the WAL is replayed). The shared
 * services on 6379 and 5432 are never touched. See ../shared/RECIPES.md.
 */
export interface PrivateService {
  url: string;
  /** SIGKILL to the whole process group, as a crash. */
  kill(): Promise<void>;
  /** Starts again on the same data; resolves once the port accepts connections. */
  start(): Promise<void>;
  /** Kills it and removes its data. */
  destroy(): Promise<void>;
}


async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function killGroup(child: ChildProcess | undefined): Promise<void> {
  if (child?.pid === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
  return exited;
}

function service(port: number, url: string, launch: () => ChildProcess, cleanup: () => void): PrivateService {
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    child = launch();
    await waitForPort(port);
  };
  return {
    url,
    kill: () => killGroup(child),
    start,
    destroy: async () => {
      await killGroup(child);
      cleanup();
    },
  };
}

/** Redis with an append-only file fsynced on every write, so a SIGKILL loses no acknowledged job. */
export async function startPrivateRedis(): Promise<PrivateService> {
  const dir = mkdtempSync(join(tmpdir(), 'botserver-redis-'));
  const port = await freePort();
  const conf = join(dir, 'redis.conf');
  writeFileSync(
    conf,
    [`port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly yes', 'appendfsync always', 'maxmemory-policy noeviction', 'daemonize no', 'loglevel warning'].join('\n'),
  );
  const redis = service(
    port,
    `redis://127.0.0.1:${port}`,
    () => spawn('redis-server', [conf], { detached: true, stdio: 'ignore' }),
    () => rmSync(dir, { recursive: true, force: true }),
  );
  await redis.start();
  return redis;
}

function postgresBin(name: string): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) {
    const path = join(root, version, 'bin', name);
    if (existsSync(path)) return path;
  }
  return name;
}

/** Runs as the `postgres` OS user when this process is root (initdb and postgres refuse root). */
function asPostgres(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
}

/**
 * PostgreSQL with trust auth on loopback only, its socket in its own dir; `url` names the database `botserver`.
 * `settings`: more server settings (`-c name=value`), such as a preloaded extension for a benchmark.
 */
export async function startPrivatePostgres(settings: Record<string, string> = {}): Promise<PrivateService> {
  const dir = mkdtempSync(join(tmpdir(), 'botserver-pg-'));
  chmodSync(dir, 0o700);
  if (process.getuid?.() === 0) {
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(id.stdout.trim()), Number(gid.stdout.trim()));
  }
  const data = join(dir, 'data');
  const [initCommand, initArgs] = asPostgres(postgresBin('initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '--no-locale', '--no-sync', '-E', 'UTF8']);
  const init = spawnSync(initCommand, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const [command, args] = asPostgres(postgresBin('postgres'), [
    '-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`, '-c', 'fsync=on', '-c', 'max_connections=200',
    ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ]);
  const postgres = service(
    port,
    `postgres://postgres@127.0.0.1:${port}/botserver`,
    () => spawn(command, args, { detached: true, stdio: 'ignore' }),
    () => rmSync(dir, { recursive: true, force: true }),
  );
  await postgres.start();
  return postgres;
}
