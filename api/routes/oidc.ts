import { Router, type Request } from 'express';
import { findOrLinkOidcUser } from '../../shared/accounts/index.js';
import { UnauthorizedError } from '../../shared/errors.js';
import { log } from '../../shared/log/index.js';
import { setSessionCookies } from '../auth/cookies.js';
import { openSession } from '../auth/login.js';
import { OIDC_CALLBACK_PATH, OIDC_LOGIN_PATH, OidcLogin } from '../auth/oidc.js';
import { endFlowSession, oidcFlowSession, regenerateFlowSession } from '../auth/oidc-session.js';
import type { ApiContext } from '../context.js';

const oidcFailed = (): UnauthorizedError => new UnauthorizedError('oidc_failed', 'The OIDC login could not be completed');

/**
 * GET /auth/oidc/login and GET /auth/oidc/callback (CONTRACT §3) when ZITADEL_* configure an issuer; without it
 * no route is mounted and both paths answer 404 `not_found`. The issuer is discovered here, once, at start.
 */
export async function oidcRoutes(ctx: ApiContext): Promise<Router> {
  const router = Router();
  const settings = ctx.kernel.config.oidc;
  if (settings === undefined) return router;

  const oidc = new OidcLogin(ctx.kernel, settings);
  await oidc.start();
  // express-session only here: nothing else in the API has (or needs) a server-side session of this kind.
  const flowSession = oidcFlowSession(ctx.kernel);

  router.get(OIDC_LOGIN_PATH, flowSession, async (req, res, next) => {
    await regenerateFlowSession(req);
    await oidc.beginLogin(req, res, next);
  });

  router.get(OIDC_CALLBACK_PATH, flowSession, async (req, res) => {
    const outcome = await oidc.completeLogin(req, res).finally(() => endFlowSession(ctx.kernel, req, res));
    if (!outcome.ok) return refuse(ctx, req, outcome.reason);

    const linked = await findOrLinkOidcUser(ctx.kernel.db, ctx.kernel.keys, outcome.identity, { requireVerifiedEmail: ctx.kernel.config.oidcRequireVerifiedEmail });
    if (!linked.ok) return refuse(ctx, req, linked.reason, linked.user === undefined ? undefined : { id: linked.user.id, tenantId: linked.user.tenant_id });

    const { user } = linked;
    const { session, cookieSecret } = await openSession(ctx, user, true);
    if (cookieSecret === undefined) throw new Error('a cookie session was requested but none was opened');
    setSessionCookies(ctx, res, session.sid, cookieSecret);
    await ctx.audit(req, {
      actor: user.id,
      tenantId: user.tenant_id,
      type: 'auth.login.success',
      outcome: 'success',
      details: { method: 'oidc', roles: linked.roles, ...(linked.created ? { created: true } : {}), ...(linked.linked ? { linked: true } : {}) },
    });
    // The provider's roles replaced the account's: a new account or a changed role set is a configuration change.
    const roles = [...linked.roles].sort();
    if (linked.created || roles.join(',') !== linked.previousRoles.join(',')) {
      await ctx.audit(req, {
        actor: user.id,
        tenantId: user.tenant_id,
        type: 'config.change',
        outcome: 'success',
        target: `user:${user.id}`,
        details: linked.created ? { change: 'user_created', source: 'oidc', roles } : { change: 'roles_changed', source: 'oidc', from: linked.previousRoles, to: roles },
      });
    }
    res.redirect(302, '/');
  });

  return router;
}

async function refuse(ctx: ApiContext, req: Request, reason: string, user?: { id: string; tenantId: string }): Promise<never> {
  log.info('oidc login refused', { requestId: req.requestId, reason });
  await ctx.audit(req, { actor: user?.id ?? null, tenantId: user?.tenantId ?? null, type: 'auth.login.failure', outcome: 'failure', details: { method: 'oidc', reason } });
  throw oidcFailed();
}
