import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../shared/config/index.js';

const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/botserver';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Data directories made by this process, removed when it exits. */
const madeDirs: string[] = [];
process.once('exit', () => {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh, empty, private (0700) directory under the system temp dir; removed when the process exits. */
export function freshDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'botserver-test-'));
  madeDirs.push(dir);
  return dir;
}

/** A fresh random 256-bit key as 64 lower-case hex characters. */
export function randomHexKey(): string {
  return randomBytes(32).toString('hex');
}

/**
 * A valid test configuration with fresh keys and a fresh data directory. The real environment is read only for
 * DATABASE_URL and REDIS_URL (so the suite can point at other servers); everything else comes from here or from
 * `overrides`. The JWT signing key is left to the dev-key path (generated under the fresh data directory).
 */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    BOTSERVER_DATA_DIR: freshDataDir(),
    BOTSERVER_JWT_SECRET: randomHexKey(),
    BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
    DATABASE_ENCRYPTION_KEY: randomHexKey(),
    DATABASE_URL: process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL,
    REDIS_URL: process.env.REDIS_URL ?? DEFAULT_REDIS_URL,
    LOG_LEVEL: 'warn',
    // Every test client comes from 127.0.0.1: budgets large enough for a suite; rate-limit tests set their own.
    BOTSERVER_RATE_LIMIT_PER_IP: '100000',
    BOTSERVER_RATE_LIMIT_PER_USER: '1000000',
    ...overrides,
  });
}

/** A BullMQ key prefix no other test (or process) uses, e.g. `test-3f9a…`. */
export function uniqueQueuePrefix(): string {
  return `test-${randomBytes(8).toString('hex')}`;
}
