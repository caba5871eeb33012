import { Router } from 'express';
import type { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { checkReadiness } from '../../shared/health.js';

/** `/healthz`: the process is alive. `/readyz`: Redis and PostgreSQL answer now (shared/health.ts). */
export function healthRoutes(probeRedis: Redis, db: Knex): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    const { ready, body } = await checkReadiness(probeRedis, db);
    res.status(ready ? 200 : 503).json(body);
  });
  return router;
}
