import express, { type Express } from 'express';
import helmet from 'helmet';
import { Redis } from 'ioredis';
import type { Kernel } from '../shared/kernel.js';
import { errorHandler, notFound } from './http/errors.js';
import { requestId } from './http/requestId.js';
import { healthRoutes } from './routes/health.js';

export interface App {
  express: Express;
  close(): Promise<void>;
}

const JSON_BODY_LIMIT = '64kb';

export function createApp(kernel: Kernel): App {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', kernel.config.trustProxy === undefined ? false : parseTrustProxy(kernel.config.trustProxy));
  const probeRedis = new Redis(kernel.config.redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0, connectionName: 'botserver-readyz' });
  probeRedis.on('error', () => undefined);

  app.use(requestId);
  const tls = kernel.config.tls !== undefined;
  app.use(
    helmet({
      strictTransportSecurity: tls ? { maxAge: 31536000, includeSubDomains: true } : false,
      contentSecurityPolicy: { directives: { upgradeInsecureRequests: tls ? [] : null } },
    }),
  );
  app.use(healthRoutes(probeRedis, kernel.db));
  app.use(express.json({ limit: JSON_BODY_LIMIT, strict: true, type: ['application/json', 'application/*+json'] }));
  app.use(notFound);
  app.use(errorHandler);

  return {
    express: app,
    async close() {
      probeRedis.disconnect();
      return Promise.resolve();
    },
  };
}

function parseTrustProxy(value: string): number | string[] {
  return /^\d+$/.test(value) ? Number(value) : value.split(',').map((item) => item.trim());
}
