import cookieParser from 'cookie-parser';
import express, { type Express } from 'express';
import helmet from 'helmet';
import { createRedis, type Kernel } from '../shared/kernel.js';
import { accountDuties, authenticate } from './auth/authenticate.js';
import { createApiContext, type ApiContext } from './context.js';
import { checkReadiness } from '../shared/health.js';
import { allowedOriginsCors, widgetOriginsCors } from './http/cors.js';
import { bodyParsers } from './http/body.js';
import { errorHandler, notFound } from './http/errors.js';
import { ipLimits, userLimits } from './http/limits.js';
import { requestId } from './http/requestId.js';
import { openApiRoutes } from './openapi/route.js';
import { auditApiCalls, auditRoutes } from './routes/audit.js';
import { authRoutes } from './routes/auth.js';
import { botRoutes } from './routes/bots.js';
import { bullBoardRoutes } from './routes/bullBoard.js';
import { conversationRoutes } from './conversations/routes.js';
import { fileRoutes } from './files/routes.js';
import { knowledgeRoutes } from './knowledge/routes.js';
import { gdprRoutes } from './routes/gdpr.js';
import { metricsRoutes } from './routes/metrics.js';
import { healthRoutes } from './routes/health.js';
import { oidcRoutes } from './routes/oidc.js';
import { userRoutes } from './users/routes.js';
import { webchatRoutes } from './routes/webchat.js';

export interface App {
  express: Express;
  context: ApiContext;
  close(): Promise<void>;
}

export async function createApp(kernel: Kernel): Promise<App> {
  const context = await createApiContext(kernel);
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', kernel.config.trustProxy === undefined ? false : parseTrustProxy(kernel.config.trustProxy));
  const probeRedis = createRedis(kernel.config, 'botserver-readyz', { enableOfflineQueue: false, maxRetriesPerRequest: 0 });

  context.metrics.readiness = () => checkReadiness(probeRedis, kernel.db);
  app.use(requestId);
  const tls = kernel.config.tls !== undefined;
  app.use(
    helmet({
      strictTransportSecurity: tls ? { maxAge: 31536000, includeSubDomains: true } : false,
      // Written out in full (no helmet defaults): the web chat loads only its own files and speaks only to its origin.
      contentSecurityPolicy: {
        useDefaults: false,
        directives: {
          defaultSrc: ["'self'"],
          baseUri: ["'none'"],
          connectSrc: ["'self'"],
          fontSrc: ["'self'"],
          formAction: ["'self'"],
          frameAncestors: ["'none'"],
          imgSrc: ["'self'"],
          objectSrc: ["'none'"],
          scriptSrc: ["'self'"],
          scriptSrcAttr: ["'none'"],
          styleSrc: ["'self'"],
          ...(tls ? { upgradeInsecureRequests: [] } : {}),
        },
      },
      xFrameOptions: { action: 'deny' },
    }),
  );
  app.use(context.metrics.middleware());
  // Only whitelisted origins get CORS headers (exactly their origin, with credentials); any other origin gets none at
  // all (not even Allow-Credentials/Methods on a preflight); no wildcard is ever sent. The answer depends on Origin.
  app.use(allowedOriginsCors(kernel.config.allowedOrigins));
  app.use(ipLimits(context));
  // After the IP limit: deciding needs a (cached) database lookup of the bot's widget origins.
  app.use(widgetOriginsCors(kernel.config.allowedOrigins, context.widgetOrigins));
  app.use(healthRoutes(probeRedis, kernel.db));
  app.use(metricsRoutes(context));
  app.use(bodyParsers()); // JSON with per-route size limits; 415 for any other body type
  app.use(cookieParser());
  app.use(auditApiCalls(context)); // a sampled api.call audit event per request (BOTSERVER_AUDIT_API_SAMPLE_RATE)
  app.use(webchatRoutes(context)); // the page, its assets and /auth/socket-token (authenticates itself)
  app.use(openApiRoutes(kernel.config)); // GET /api/openapi.json (public)
  app.use(bullBoardRoutes(context)); // /admin/queues: admins only, Origin-checked instead of X-CSRF-Token (authenticates itself)
  app.use(authenticate(context));
  app.use(userLimits(context));
  app.use(accountDuties(context));
  app.use(authRoutes(context));
  app.use(await oidcRoutes(context));
  app.use(userRoutes(context));
  app.use(botRoutes(context));
  app.use(conversationRoutes(context));
  app.use(fileRoutes(context));
  app.use(knowledgeRoutes(context));
  app.use(gdprRoutes(context));
  app.use(auditRoutes(context));
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
