import type { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { AuditRecorder } from './audit/index.js';
import type { Config } from './config/index.js';
import { createDb, familyRole, type ProcessFamily } from './db/index.js';
import { Keys } from './keys.js';
import { configureLogger, log } from './log/index.js';
import { EgressPolicy, ownListenAddresses, type Resolver } from './net/egress.js';
import { QueueFactory } from './queue/index.js';
import { createRedis } from './redis.js';

export { createRedis } from './redis.js';

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
  /** The egress policy for connections to addresses a tenant chose (BOTSERVER_EGRESS_ALLOW). */
  egress: EgressPolicy;
  /** Runs `task` first when the kernel closes (a family's own timers and clients). */
  onClose(task: () => Promise<void>): void;
  close(): Promise<void>;
}

export interface KernelOptions {
  /** Redis key prefix for queues, instead of BOTSERVER_QUEUE_PREFIX (tests isolate themselves with it). */
  queuePrefix?: string;
  /** Name resolution for the egress policy (tests resolve names with a stub, never through DNS). */
  resolver?: Resolver;
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
      config.redisSentinel?.password ?? '',
    ],
  });
  for (const warning of config.warnings) log.warn(`INSECURE SETTING: ${warning}`);
}

export function createKernel(config: Config, family: ProcessFamily, options: KernelOptions = {}): Kernel {
  const keys = new Keys(config.secrets);
  // The API's commands (queue adds, publishes, session checks) of many requests at once go to Redis in one write:
  // commands issued while a batch is on its way wait for it and go together. Never on a worker family's connection,
  // which BullMQ duplicates for its blocking commands.
  const redis = createRedis(config, `botserver-${family}`, family === 'api' ? { enableAutoPipelining: true } : {});
  const db = createDb({ url: config.databaseUrl, role: familyRole[family] });
  const queues = new QueueFactory({ connection: redis, ring: keys.payloadRing, prefix: options.queuePrefix ?? config.queuePrefix, jobLockMs: config.jobLockMs });
  let auditDb: Knex | undefined = family === 'audit' ? db : undefined;
  const fallbackDb = (): Knex => (auditDb ??= createDb({ url: config.databaseUrl, role: familyRole.audit, poolMax: 2 }));
  const audit = new AuditRecorder({
    enabled: config.auditEnabled,
    queues,
    fallbackDb,
    keys: keys.auditKeys,
    groupCommit: true,
  });
  const egress = new EgressPolicy({ allow: config.egressAllow, ownAddresses: ownListenAddresses(config.host), ...(options.resolver === undefined ? {} : { resolver: options.resolver }) });
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
    egress,
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
