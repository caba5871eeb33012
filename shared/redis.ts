import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config/index.js';
import { log } from './log/index.js';

export type RedisSettings = Pick<Config, 'redisUrl' | 'redisSentinel'>;

/**
 * ioredis options every connection of a process shares: REDIS_URL's credentials, database and TLS, and with
 * REDIS_SENTINELS the Sentinel set that names the current master (a failover moves every connection, the
 * duplicates BullMQ and the Socket.IO adapter make included, to the new master).
 */
export function redisOptions(settings: RedisSettings): RedisOptions {
  const sentinel = settings.redisSentinel;
  if (sentinel === undefined) return {};
  const tls = new URL(settings.redisUrl).protocol === 'rediss:';
  return {
    sentinels: sentinel.sentinels.map(({ host, port }) => ({ host, port })),
    name: sentinel.name,
    role: 'master',
    ...(sentinel.password === undefined ? {} : { sentinelPassword: sentinel.password }),
    ...(tls ? { enableTLSForSentinelMode: true } : {}),
    // Subscribes to the sentinels' +switch-master instead of waiting for the old master's connection to fail.
    failoverDetector: true,
  };
}

/**
 * A connection for commands, BullMQ and pub/sub: never gives up a command while Redis is away
 * (`maxRetriesPerRequest: null`, what BullMQ requires), named in `CLIENT LIST`. `overrides` for special cases such
 * as the readiness probe, which must fail fast instead.
 */
export function createRedis(settings: RedisSettings, name: string, overrides: RedisOptions = {}): Redis {
  const redis = new Redis(settings.redisUrl, { ...redisOptions(settings), maxRetriesPerRequest: null, connectionName: name, lazyConnect: false, ...overrides });
  redis.on('error', (error: Error) => log.debug('redis connection error', { connection: name, error: error.message }));
  return redis;
}

const QUIT_GRACE_MS = 2_000;

/**
 * QUIT, then the socket is cut. A library that sends commands without waiting for them (the Socket.IO Redis
 * adapter's UNSUBSCRIBEs on close) gets their replies first, since QUIT is answered after them, instead of their
 * promises failing unhandled with "Connection is closed" when the socket goes. A server that does not answer within
 * `graceMs` (an outage) gets the socket cut all the same.
 */
export async function closeGracefully(client: Redis, graceMs = QUIT_GRACE_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([client.quit().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
  clearTimeout(timer);
  client.disconnect();
}
