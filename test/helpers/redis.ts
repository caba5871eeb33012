import { Redis } from 'ioredis';

/** Removes the Redis keys matching the patterns (queues of a test's private prefixes, counters it created). */
export async function dropRedisKeys(redisUrl: string, patterns: readonly string[]): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    for (const pattern of patterns) {
      const keys: string[] = [];
      for await (const batch of redis.scanStream({ match: pattern, count: 500 })) keys.push(...(batch as string[]));
      if (keys.length > 0) await redis.del(...keys);
    }
  } finally {
    redis.disconnect();
  }
}

const REDIS_SERVER = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

/**
 * An empty Redis database number of the server (15 down to 1), for a suite whose processes use BullMQ's default
 * prefix or must see "all keys" as only their own.
 */
export async function emptyRedisDb(): Promise<number> {
  for (let db = 15; db >= 1; db -= 1) {
    const redis = new Redis({ host: REDIS_SERVER.hostname, port: Number(REDIS_SERVER.port || 6379), db, lazyConnect: true });
    try {
      await redis.connect();
      if ((await redis.dbsize()) === 0) return db;
    } finally {
      redis.disconnect();
    }
  }
  throw new Error('no empty Redis database found (1-15)');
}
