import type { CookieOptions, Response } from 'express';
import type { ApiContext } from '../context.js';
import { CSRF_COOKIE, SESSION_COOKIE } from './authenticate.js';

function baseOptions(ctx: ApiContext): CookieOptions {
  return { secure: ctx.kernel.config.tls !== undefined || ctx.kernel.config.production, sameSite: 'strict', path: '/' };
}

/**
 * The browser session: an HttpOnly, SameSite=Strict cookie `<sid>.<secret>` (Secure with TLS), never readable by
 * scripts, plus a readable CSRF cookie that the page echoes in X-CSRF-Token.
 */
export function setSessionCookies(ctx: ApiContext, res: Response, sid: string, cookieSecret: string): string {
  const maxAge = ctx.kernel.config.sessionTimeoutSeconds * 24 * 1000;
  const csrf = ctx.sessions.csrfToken(sid);
  res.cookie(SESSION_COOKIE, `${sid}.${cookieSecret}`, { ...baseOptions(ctx), httpOnly: true, maxAge });
  res.cookie(CSRF_COOKIE, csrf, { ...baseOptions(ctx), httpOnly: false, maxAge });
  return csrf;
}

export function clearSessionCookies(ctx: ApiContext, res: Response): void {
  res.clearCookie(SESSION_COOKIE, { ...baseOptions(ctx), httpOnly: true });
  res.clearCookie(CSRF_COOKIE, baseOptions(ctx));
}
