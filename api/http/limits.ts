import { Router, type Request } from 'express';
import type { ApiContext } from '../context.js';
import { Limiter, limitBy } from './rateLimit.js';

const UNLIMITED_PATHS = new Set(['/healthz', '/readyz']);
const ipOf = (req: Request): string => req.ip ?? 'unknown';

/**
 * Health checks, and the page's static files: one page load fetches some thirty modules, stylesheets and icons,
 * which cost nothing to serve and would otherwise spend a third of a visitor's budget for a minute.
 */
function exemptFromIpLimit(req: Request): boolean {
  if (UNLIMITED_PATHS.has(req.path)) return true;
  return (req.method === 'GET' || req.method === 'HEAD') && (req.path.startsWith('/assets/') || req.path === '/widget.js');
}

/**
 * Budgets of CONTRACT §2: per IP per minute on every route but the health checks, stricter per-IP buckets for
 * `/auth/*` (a fifth) and guest tokens (a tenth), and per user per hour once the caller is known.
 */
export function ipLimits(ctx: ApiContext): Router {
  const { redis, config } = ctx.kernel;
  const perIp = new Limiter(redis, { name: 'ip', points: config.rateLimitPerIp, durationSeconds: 60 });
  const auth = new Limiter(redis, { name: 'auth', points: Math.max(1, Math.ceil(config.rateLimitPerIp / 5)), durationSeconds: 60 });
  const guest = new Limiter(redis, { name: 'guest', points: Math.max(1, Math.ceil(config.rateLimitPerIp / 10)), durationSeconds: 60 });
  const router = Router();
  router.use(limitBy(perIp, (req) => (exemptFromIpLimit(req) ? undefined : ipOf(req))));
  router.use('/auth', limitBy(auth, ipOf));
  // `use`, not `post`: a route here would answer OPTIONS itself, before the widget origins' CORS.
  router.use('/api/bots/:id/guest-token', limitBy(guest, (req) => (req.method === 'POST' ? ipOf(req) : undefined)));
  return router;
}

function userLimiter(ctx: ApiContext): Limiter {
  return new Limiter(ctx.kernel.redis, { name: 'user', points: ctx.kernel.config.rateLimitPerUser, durationSeconds: 3600 });
}

/** Drops a user's hourly budget counter (account erasure). */
export async function forgetUserLimits(ctx: ApiContext, userId: string): Promise<void> {
  await userLimiter(ctx).forget(userId);
}

export function userLimits(ctx: ApiContext): Router {
  const perUser = userLimiter(ctx);
  const router = Router();
  router.use(limitBy(perUser, (req) => req.auth?.userId));
  return router;
}
