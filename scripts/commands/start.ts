import { spawn, type ChildProcess } from 'node:child_process';
import type { Config } from '../../shared/config/index.js';
import { ownModuleCommand } from '../../shared/runtime.js';
import { firstRun } from './firstRun.js';
import { migrate } from './migrate.js';

const CLI = ownModuleCommand(import.meta.url, '../cli');

function child(args: string[]): ChildProcess {
  return spawn(process.execPath, [...CLI.nodeArgs, CLI.path, ...args], { stdio: 'inherit', env: process.env });
}

async function waitForHealth(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

/**
 * `npm start`: migrations, a bootstrap admin on first run, then the API and every worker family as child
 * processes. The admin's one-time password goes to this terminal only, never to a log file.
 */
export async function startAll(config: Config): Promise<void> {
  const applied = await migrate(config);
  process.stdout.write(`botserver: database ready (${applied.length} migration(s) applied)\n`);
  const first = await firstRun(config);
  const children = [child(['api']), child(['worker', 'all'])];
  let stopping = false;
  const stopAll = (code: number): void => {
    if (stopping) return;
    stopping = true;
    for (const running of children) if (running.exitCode === null) running.kill('SIGTERM');
    Promise.all(children.map((running) => (running.exitCode === null ? new Promise((resolve) => running.once('exit', resolve)) : Promise.resolve())))
      .then(() => process.exit(code))
      .catch(() => process.exit(1));
  };
  for (const running of children) {
    running.once('exit', (code) => {
      if (!stopping) {
        process.stderr.write(`botserver: a child process ended unexpectedly (exit ${code ?? 'signal'}); stopping\n`);
        stopAll(1);
      }
    });
  }
  process.on('SIGINT', () => stopAll(0));
  process.on('SIGTERM', () => stopAll(0));

  const scheme = config.tls === undefined ? 'http' : 'https';
  const url = `${scheme}://${config.host.includes(':') ? `[${config.host}]` : config.host}:${config.port}`;
  if (!(await waitForHealth(url, 30_000)) && config.tls === undefined) {
    process.stderr.write('botserver: the API did not become healthy within 30 s\n');
    stopAll(1);
    return;
  }
  process.stdout.write(`\nbotserver is running at ${url}\n`);
  if (first.admin !== undefined) {
    process.stdout.write(
      `\nFirst run: log in as ${first.admin.email} with the one-time password\n\n    ${first.admin.password}\n\n` +
        'It is shown only now and must be changed at first login.\n',
    );
  }
  if (first.demoBot !== undefined) process.stdout.write(`\nChat with the demo bot as a guest: ${url}${first.demoBot.guestPath}\n\n`);
}
