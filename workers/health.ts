import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import type { Config } from '../shared/config/index.js';
import { checkReadiness } from '../shared/health.js';
import { log } from '../shared/log/index.js';
import { createRedis } from '../shared/redis.js';

export interface HealthListener {
  port: number;
  /** From now on `/readyz` answers 503 (the process is draining its jobs). */
  markStopping(): void;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(JSON.stringify(body));
}

/**
 * A worker process has no HTTP API; with BOTSERVER_HEALTH_PORT it answers the orchestrator's probes on
 * `BOTSERVER_HOST:BOTSERVER_HEALTH_PORT`: `GET /healthz` (alive) and `GET /readyz` (Redis and PostgreSQL answer,
 * and the process is not shutting down). Nothing else is served.
 */
export async function startHealthListener(config: Config, port: number, db: Knex): Promise<HealthListener> {
  const probeRedis = createRedis(config, 'botserver-worker-readyz', { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  let stopping = false;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'method_not_allowed' });
    if (path === '/healthz') return send(res, 200, { status: 'ok' });
    if (path !== '/readyz') return send(res, 404, { error: 'not_found' });
    if (stopping) return send(res, 503, { status: 'stopping' });
    checkReadiness(probeRedis, db).then(
      ({ ready, body }) => send(res, ready ? 200 : 503, body),
      () => send(res, 503, { status: 'unavailable' }),
    );
  });
  server.requestTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  log.info('health listener', { host: config.host, port: bound });
  return {
    port: bound,
    markStopping: () => {
      stopping = true;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      probeRedis.disconnect();
    },
  };
}
