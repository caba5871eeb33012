import cookieParser from 'cookie-parser';
import cors from 'cors';
import express, { type Express } from 'express';
import helmet from 'helmet';
import { Redis } from 'ioredis';
import type { Kernel } from '../shared/kernel.js';
import { accountDuties, authenticate } from './auth/authenticate.js';
import { createApiContext, type ApiContext } from './context.js';
import { errorHandler, notFound } from './http/errors.js';
import { ipLimits, userLimits } from './http/limits.js';
import { requestId } from './http/requestId.js';
import { authRoutes } from './routes/auth.js';
import { botRoutes } from './routes/bots.js';
import { conversationRoutes } from './routes/conversations.js';
import { metricsRoutes } from './routes/metrics.js';
import { healthRoutes } from './routes/health.js';
import { oidcRoutes } from './routes/oidc.js';
import { userRoutes } from './routes/users.js';
import { webchatRoutes } from './routes/webchat.js';

export interface App {
  express: Express;
  context: ApiContext;
  close(): Promise<void>;
}

const JSON_BODY_LIMIT = '64kb';

export async function createApp(kernel: Kernel): Promise<App> {
  const context = await createApiContext(kernel);
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
  app.use(context.metrics.middleware());
  // Only whitelisted origins get CORS headers (with credentials); no wildcard is ever sent.
  app.use(cors({ origin: [...kernel.config.allowedOrigins], credentials: true, maxAge: 600 }));
  app.use(ipLimits(context));
  app.use(healthRoutes(probeRedis, kernel.db));
  app.use(metricsRoutes(context));
  app.use(express.json({ limit: JSON_BODY_LIMIT, strict: true, type: ['application/json', 'application/*+json'] }));
  app.use(cookieParser());
  app.use(webchatRoutes(context)); // the page, its assets and /auth/socket-token (authenticates itself)
  app.use(authenticate(context));
  app.use(userLimits(context));
  app.use(accountDuties(context));
  app.use(authRoutes(context));
  app.use(await oidcRoutes(context));
  app.use(userRoutes(context));
  app.use(botRoutes(context));
  app.use(conversationRoutes(context));
  app.use(notFound);
  app.use(errorHandler);

  return {
    express: app,
    context,
    async close() {
      probeRedis.disconnect();
      return Promise.resolve();
    },
  };
}

function parseTrustProxy(value: string): number | string[] {
  return /^\d+$/.test(value) ? Number(value) : value.split(',').map((item) => item.trim());
}
