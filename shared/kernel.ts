import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { AuditRecorder } from './audit/index.js';
import type { Config } from './config/index.js';
import { createDb, familyRole, type ProcessFamily } from './db/index.js';
import { Keys } from './keys.js';
import { configureLogger, log } from './log/index.js';
import { QueueFactory } from './queue/index.js';

/** What every process (API or worker family) stands on: configuration, keys, Redis, PostgreSQL, queues, audit. */
export interface Kernel {
  config: Config;
  family: ProcessFamily;
  keys: Keys;
  /** Shared connection for commands (sessions, rate limits, queues). */
  redis: Redis;
  /** PostgreSQL as the family's least-privileged role. */
  db: Knex;
  queues: QueueFactory;
  audit: AuditRecorder;
  /** Runs `task` first when the kernel closes (a family's own timers and clients). */
  onClose(task: () => Promise<void>): void;
  close(): Promise<void>;
}

export interface KernelOptions {
  /** Redis key prefix for queues (tests isolate themselves with it). */
  queuePrefix?: string;
}

export function configureProcessLogging(config: Config, service: string): void {
  configureLogger({
    level: config.logLevel,
    logDir: config.logDir,
    service,
    secretValues: [
      config.secrets.jwtSecret,
      config.secrets.encryptionKey,
      config.secrets.databaseEncryptionKey,
      ...config.secrets.previousKeys.split(',').map((entry) => entry.split(':')[1] ?? ''),
      config.llm?.apiKey ?? '',
      config.qdrant?.apiKey ?? '',
      config.s3?.secretAccessKey ?? '',
      config.oidc?.clientSecret ?? '',
      config.metricsToken ?? '',
    ],
  });
  for (const warning of config.warnings) log.warn(`INSECURE SETTING: ${warning}`);
}

export function createRedis(url: string, name: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null, connectionName: name, lazyConnect: false });
  redis.on('error', (error: Error) => log.debug('redis connection error', { connection: name, error: error.message }));
  return redis;
}

export function createKernel(config: Config, family: ProcessFamily, options: KernelOptions = {}): Kernel {
  const keys = new Keys(config.secrets);
  const redis = createRedis(config.redisUrl, `botserver-${family}`);
  const db = createDb({ url: config.databaseUrl, role: familyRole[family] });
  const queues = new QueueFactory({ connection: redis, ring: keys.payloadRing, ...(options.queuePrefix === undefined ? {} : { prefix: options.queuePrefix }) });
  let auditDb: Knex | undefined = family === 'audit' ? db : undefined;
  const fallbackDb = (): Knex => (auditDb ??= createDb({ url: config.databaseUrl, role: familyRole.audit, poolMax: 2 }));
  const audit = new AuditRecorder({
    enabled: config.auditEnabled,
    queues,
    fallbackDb,
    keys: { chainKey: keys.auditChainKey, pseudonymKey: keys.pseudonymKey },
  });
  let closed = false;
  const closeTasks: Array<() => Promise<void>> = [];
  return {
    config,
    family,
    keys,
    redis,
    db,
    queues,
    audit,
    onClose(task) {
      closeTasks.push(task);
    },
    async close() {
      if (closed) return;
      closed = true;
      await queues.close();
      await Promise.allSettled(closeTasks.map((task) => task()));
      await Promise.allSettled([db.destroy(), auditDb !== undefined && auditDb !== db ? auditDb.destroy() : Promise.resolve()]);
      redis.disconnect();
      keys.zeroize();
    },
  };
}
