import { Router } from 'express';
import type { Redis } from 'ioredis';
import type { Knex } from 'knex';

const CHECK_TIMEOUT_MS = 1500;

async function answers(check: () => Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), CHECK_TIMEOUT_MS);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `/healthz`: the process is alive. `/readyz`: Redis and PostgreSQL answer now. The Redis probe uses its own
 * connection without an offline queue, so an outage fails fast instead of queueing the PING.
 */
export function healthRoutes(probeRedis: Redis, db: Knex): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const [redis, postgres] = await Promise.all([answers(() => probeRedis.ping()), answers(() => db.raw('select 1'))]);
    const ready = redis && postgres;
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable', redis: redis ? 'ok' : 'down', postgres: postgres ? 'ok' : 'down' });
  });
  return router;
}
