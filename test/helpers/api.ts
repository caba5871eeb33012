import { randomBytes } from 'node:crypto';
import { createAccount, hashPassword, setPassword, type Role } from '../../shared/accounts/index.js';
import type { Config } from '../../shared/config/index.js';
import { createDb, familyRole } from '../../shared/db/index.js';
import { configureProcessLogging, createKernel, type Kernel, type KernelOptions } from '../../shared/kernel.js';
import { Keys } from '../../shared/keys.js';
import { startApiServer, type ApiServer } from '../../api/server.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { testConfig, uniqueQueuePrefix } from './config.js';

export interface TestApi {
  url: string;
  config: Config;
  kernel: Kernel;
  server: ApiServer;
  stop(): Promise<void>;
}

/** A test configuration on the given database, listening on a free port. */
export function apiTestConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  return testConfig({ DATABASE_URL: databaseUrl, BOTSERVER_PORT: '0', ...env });
}

/**
 * An API server in this process (its own kernel), on a free port. Pass the same config to two calls for two
 * "processes" sharing keys. `kernelOptions` may give a stub resolver for the egress policy.
 */
export async function startTestApi(config: Config, queuePrefix = uniqueQueuePrefix(), kernelOptions: Omit<KernelOptions, 'queuePrefix'> = {}): Promise<TestApi> {
  configureProcessLogging(config, 'botserver-test-api');
  const kernel = createKernel(config, 'api', { ...kernelOptions, queuePrefix });
  const server = await startApiServer(kernel);
  return { url: server.url, config, kernel, server, stop: () => server.shutdown() };
}

/** The audit worker family in this process, on the same queue prefix as the API under test. */
export async function startTestAuditWorker(config: Config, queuePrefix: string): Promise<RunningWorkers> {
  return startWorkers(config, 'audit', { queuePrefix });
}

export interface TestUser {
  id: string;
  email: string;
  password: string;
  tenantId: string;
  tenant: string;
}

/** A ready-to-use local account (its one-time password already replaced by `password`). */
export async function createTestUser(config: Config, options: { role: Role; tenant?: string; email?: string; password?: string }): Promise<TestUser> {
  const keys = new Keys(config.secrets);
  const db = createDb({ url: config.databaseUrl, role: familyRole.api, poolMax: 2 });
  try {
    const email = options.email ?? `user-${randomBytes(6).toString('hex')}@example.test`;
    const created = await createAccount(db, keys, { email, role: options.role, tenant: options.tenant ?? 'default' });
    const password = options.password ?? `pw-${randomBytes(12).toString('hex')}`;
    await setPassword(db, created.id, await hashPassword(password));
    return { id: created.id, email: created.email, password, tenantId: created.tenantId, tenant: created.tenant };
  } finally {
    await db.destroy();
    keys.zeroize();
  }
}

export interface LoginResult {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}): Promise<LoginResult> {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await response.text();
  return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), headers: response.headers };
}

/** Logs in and returns the token pair; fails the test when the login does not succeed. */
export async function loginTokens(api: { url: string }, user: { email: string; password: string }, totp?: string): Promise<{ accessToken: string; refreshToken: string }> {
  const result = await postJson(`${api.url}/auth/login`, { email: user.email, password: user.password, ...(totp === undefined ? {} : { totp }) });
  if (result.status !== 200) throw new Error(`login failed: ${result.status} ${JSON.stringify(result.body)}`);
  return { accessToken: String(result.body.accessToken), refreshToken: String(result.body.refreshToken) };
}
