import { Router } from 'express';
import { timingSafeEqual, createHash } from 'node:crypto';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors.js';
import { identifyBearer } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';

function sameSecret(a: string, b: string): boolean {
  // Hashing first gives equal lengths, so the comparison time says nothing about the token.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** `/metrics`: the scrape token (BOTSERVER_METRICS_TOKEN) or an admin's access token. */
export function metricsRoutes(ctx: ApiContext): Router {
  const router = Router();
  router.get('/metrics', async (req, res) => {
    const token = /^Bearer (\S+)$/.exec(req.get('authorization') ?? '')?.[1];
    if (token === undefined) throw new UnauthorizedError();
    const scrapeToken = ctx.kernel.config.metricsToken;
    if (scrapeToken === undefined || !sameSecret(token, scrapeToken)) {
      const caller = await identifyBearer(ctx, token);
      if (caller.kind !== 'user' || !caller.auth.roles.includes('admin')) throw new ForbiddenError();
    }
    res.setHeader('Content-Type', ctx.metrics.registry.contentType);
    res.setHeader('Cache-Control', 'no-store');
    res.send(await ctx.metrics.render());
  });
  return router;
}
