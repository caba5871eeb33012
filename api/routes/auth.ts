import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import { findUserById, hashPassword, setPassword, verifyPassword, type UserRow } from '../../shared/accounts/index.js';
import { AppError, UnauthorizedError, ValidationError } from '../../shared/errors.js';
import { requireAuth } from '../auth/authenticate.js';
import { clearSessionCookies, setSessionCookies } from '../auth/cookies.js';
import { issueTokens, login, openSession, retryAfterOf } from '../auth/login.js';
import { completeEnrolment, startEnrolment } from '../auth/mfa.js';
import type { ApiContext } from '../context.js';
import { noFieldsSchema, parseInput } from '../http/validate.js';

export const loginSchema = z.strictObject({
  email: z.string().min(1).max(254),
  password: z.string().min(1).max(1024),
  totp: z.string().max(64).optional(),
});
export const refreshSchema = z.strictObject({ refreshToken: z.string().min(1).max(256) });
export const passwordSchema = z.strictObject({ currentPassword: z.string().min(1).max(1024), newPassword: z.string().max(1024) });
export const codeSchema = z.strictObject({ code: z.string().min(1).max(64) });

/** `?cookie=1` also opens the browser's cookie session; `?all=1` ends every session of the account. */
export const loginQuerySchema = z.strictObject({ cookie: z.enum(['0', '1']).optional() });
export const logoutQuerySchema = z.strictObject({ all: z.enum(['0', '1']).optional() });

export const MIN_PASSWORD_LENGTH = 12;

async function currentUser(ctx: ApiContext, req: Request): Promise<UserRow> {
  const auth = requireAuth(req);
  const user = await findUserById(ctx.kernel.db, auth.userId);
  if (user === undefined || user.disabled || user.erased_at !== null) throw new UnauthorizedError();
  return user;
}

function withRetryAfter(res: Response, error: unknown): never {
  const retryAfter = retryAfterOf(error);
  if (retryAfter !== undefined) res.setHeader('Retry-After', String(retryAfter));
  throw error;
}

export function authRoutes(ctx: ApiContext): Router {
  const router = Router();

  router.post('/auth/login', async (req, res) => {
    const { cookie } = parseInput(loginQuerySchema, req.query);
    const input = parseInput(loginSchema, req.body);
    const user = await login(ctx, req, input).catch((error: unknown) => withRetryAfter(res, error));
    const withCookie = cookie === '1';
    const { session, cookieSecret } = await openSession(ctx, user, withCookie);
    const tokens = await issueTokens(ctx, session);
    await ctx.audit(req, { actor: user.id, tenantId: user.tenant_id, type: 'auth.login.success', outcome: 'success', details: { method: 'password', mfa: user.mfa_enabled } });
    const csrfToken = cookieSecret === undefined ? undefined : setSessionCookies(ctx, res, session.sid, cookieSecret);
    res.json({ ...tokens, ...(csrfToken === undefined ? {} : { csrfToken }), ...(user.must_change_password ? { passwordChangeRequired: true } : {}) });
  });

  router.post('/auth/refresh', async (req, res) => {
    const { refreshToken } = parseInput(refreshSchema, req.body);
    const outcome = await ctx.sessions.spendRefreshToken(refreshToken);
    if (outcome.status === 'reused') {
      await ctx.sessions.revoke(outcome.sid);
      await ctx.audit(req, { actor: outcome.userId, type: 'auth.token.reuse', outcome: 'denied', details: { severity: 'critical', revoked: 'session_family' } });
    }
    const session = outcome.status === 'ok' ? await ctx.sessions.touch(outcome.sid) : undefined;
    if (session === undefined) throw new UnauthorizedError('invalid_token', 'The refresh token is not valid');
    res.json(await issueTokens(ctx, session));
  });

  router.post('/auth/logout', async (req, res) => {
    const auth = requireAuth(req);
    const all = parseInput(logoutQuerySchema, req.query).all === '1';
    parseInput(noFieldsSchema, req.body);
    if (all) await ctx.sessions.revokeAll(auth.userId);
    else await ctx.sessions.revoke(auth.sid);
    await ctx.audit(req, { type: 'auth.logout', outcome: 'success', details: { scope: all ? 'all_sessions' : 'this_session' } });
    clearSessionCookies(ctx, res);
    res.status(204).end();
  });

  router.post('/auth/password', async (req, res) => {
    const auth = requireAuth(req);
    const { currentPassword, newPassword } = parseInput(passwordSchema, req.body);
    const user = await currentUser(ctx, req);
    if (user.password_hash === null || !(await verifyPassword(user.password_hash, currentPassword))) {
      await ctx.audit(req, { type: 'auth.login.failure', outcome: 'failure', details: { reason: 'password_change_wrong_current' } });
      throw new UnauthorizedError('invalid_credentials', 'The current password is wrong');
    }
    if (newPassword.length < MIN_PASSWORD_LENGTH || newPassword === currentPassword) {
      throw new ValidationError(`The new password must have at least ${MIN_PASSWORD_LENGTH} characters and differ from the current one`, 'newPassword', 'weak_password');
    }
    await setPassword(ctx.kernel.db, user.id, await hashPassword(newPassword));
    await ctx.sessions.revokeAll(user.id, auth.sid);
    await ctx.sessions.update({ ...auth.session, mustChangePassword: false });
    await ctx.audit(req, { type: 'config.change', outcome: 'success', target: `user:${user.id}`, details: { change: 'password' } });
    res.status(204).end();
  });

  router.post('/auth/mfa/setup', async (req, res) => {
    requireAuth(req);
    parseInput(noFieldsSchema, req.body);
    const user = await currentUser(ctx, req);
    const enrolment = await startEnrolment(ctx, user);
    await ctx.audit(req, { type: 'auth.mfa', outcome: 'success', details: { step: 'setup' } });
    res.json(enrolment);
  });

  router.post('/auth/mfa/verify', async (req, res) => {
    const auth = requireAuth(req);
    const { code } = parseInput(codeSchema, req.body);
    const user = await currentUser(ctx, req);
    const recoveryCodes = await completeEnrolment(ctx, user, code).catch(async (error: unknown) => {
      await ctx.audit(req, { type: 'auth.mfa', outcome: 'failure', details: { step: 'verify', reason: error instanceof AppError ? error.code : 'error' } });
      throw error;
    });
    await ctx.sessions.update({ ...auth.session, mfaEnabled: true });
    await ctx.audit(req, { type: 'auth.mfa', outcome: 'success', details: { step: 'enabled' } });
    res.json({ recoveryCodes });
  });

  router.get('/.well-known/jwks.json', (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.json(ctx.tokens.jwks);
  });

  return router;
}
