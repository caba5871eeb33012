import type { NextFunction, Request, RequestHandler, Response } from 'express';
import type { Role } from '../../shared/accounts/index.js';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors.js';
import type { ApiContext } from '../context.js';

export function hasRole(roles: readonly string[], allowed: readonly Role[]): boolean {
  return allowed.some((role) => roles.includes(role));
}

/** HTTP guard: 401 without a caller, 403 `forbidden` (audited) when none of the caller's roles is allowed. */
export function requireRole(ctx: ApiContext, ...allowed: Role[]): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const auth = req.auth;
    if (auth === undefined) return next(new UnauthorizedError());
    if (hasRole(auth.roles, allowed)) return next();
    ctx
      .audit(req, { type: 'authz.denied', outcome: 'denied', target: `${req.method} ${req.baseUrl}${req.path}`, details: { required: allowed, roles: auth.roles } })
      .then(() => next(new ForbiddenError()), next);
  };
}
