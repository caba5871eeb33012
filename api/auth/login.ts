import type { Request } from 'express';
import { emailIndex, findUserByEmail, rolesOf, verifyPassword, type UserRow } from '../../shared/accounts/index.js';
import { AppError, UnauthorizedError } from '../../shared/errors.js';
import type { ApiContext } from '../context.js';
import { verifySecondFactor } from './mfa.js';
import type { Session } from './sessions.js';
import { ACCESS_TOKEN_TTL_SECONDS } from './tokens.js';

export interface LoginInput {
  email: string;
  password: string;
  totp?: string | undefined;
}

export interface IssuedTokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

const invalidCredentials = (): AppError => new UnauthorizedError('invalid_credentials', 'Wrong e-mail address or password');

function lockedError(retryAfter: number, reason: 'account_locked' | 'ip_blocked'): AppError {
  const error =
    reason === 'account_locked'
      ? new AppError('account_locked', 'Too many failed logins: the account is locked for a while', { status: 423 })
      : new AppError('rate_limited', 'Too many failed logins from this address', { status: 429 });
  return Object.assign(error, { retryAfter });
}

export function retryAfterOf(error: unknown): number | undefined {
  const value = (error as { retryAfter?: unknown }).retryAfter;
  return typeof value === 'number' ? value : undefined;
}

/** A failed attempt: counted, audited, and answered 401, or 423 once the account is (or stays) locked. */
async function fail(ctx: ApiContext, req: Request, accountKey: string, user: UserRow | undefined, reason: string): Promise<never> {
  const ip = req.ip ?? 'unknown';
  const outcome = await ctx.loginGuard.recordFailure(accountKey, ip);
  ctx.metrics.loginFailures.inc();
  if (outcome.lockedNow) ctx.metrics.lockouts.inc();
  const base = { actor: user?.id ?? null, tenantId: user?.tenant_id ?? null };
  await ctx.audit(req, { ...base, type: 'auth.login.failure', outcome: 'failure', details: { reason, failures: outcome.failures } });
  if (outcome.lockedNow) {
    await ctx.audit(req, { ...base, type: 'auth.lockout', outcome: 'denied', details: { severity: 'warning', failures: outcome.failures, lockSeconds: outcome.retryAfter } });
  }
  if (outcome.criticalNow) {
    await ctx.audit(req, { ...base, type: 'security.violation', outcome: 'denied', details: { severity: 'critical', reason: 'login_brute_force', failures: outcome.failures, ipBlockedSeconds: ctx.kernel.config.lockoutDurationSeconds } });
  }
  if (outcome.retryAfter > 0) throw lockedError(outcome.retryAfter, 'account_locked');
  throw invalidCredentials();
}

/**
 * Password login with lockout. Unknown e-mails take the same path as wrong passwords (same Argon2id work against a
 * dummy hash, same counters, same answers), so neither response nor timing tells whether an account exists.
 */
export async function login(ctx: ApiContext, req: Request, input: LoginInput): Promise<UserRow> {
  const accountKey = emailIndex(ctx.kernel.keys, input.email);
  const state = await ctx.loginGuard.check(accountKey, req.ip ?? 'unknown');
  const user = await findUserByEmail(ctx.kernel.db, ctx.kernel.keys, input.email);
  if (state.blocked) {
    if (state.reason === 'account_locked') await fail(ctx, req, accountKey, user, 'locked');
    await ctx.audit(req, { actor: user?.id ?? null, type: 'auth.login.failure', outcome: 'denied', details: { reason: 'ip_blocked' } });
    throw lockedError(state.retryAfter, state.reason);
  }
  const usable = user !== undefined && user.password_hash !== null && !user.disabled && user.erased_at === null;
  const passwordOk = await verifyPassword(usable ? (user.password_hash ?? '') : ctx.dummyPasswordHash, input.password);
  if (!usable || !passwordOk) return fail(ctx, req, accountKey, user, 'bad_credentials');

  if (user.mfa_enabled) {
    if (input.totp === undefined || input.totp === '') {
      throw new UnauthorizedError('mfa_required', 'A TOTP or recovery code is required');
    }
    if (!(await verifySecondFactor(ctx, user, input.totp))) return fail(ctx, req, accountKey, user, 'bad_second_factor');
  }
  await ctx.loginGuard.reset(accountKey);
  return user;
}

/** Opens a session for an authenticated user (password or OIDC), optionally as a browser cookie session. */
export async function openSession(ctx: ApiContext, user: UserRow, withCookie: boolean): Promise<{ session: Session; cookieSecret: string | undefined }> {
  const roles = await rolesOf(ctx.kernel.db, user.id, user.tenant_id);
  return ctx.sessions.create(
    { userId: user.id, tenantId: user.tenant_id, roles, mustChangePassword: user.must_change_password, mfaEnabled: user.mfa_enabled },
    withCookie,
  );
}

export async function issueTokens(ctx: ApiContext, session: Session): Promise<IssuedTokens> {
  const accessToken = await ctx.tokens.sign({ sub: session.userId, sid: session.sid, tid: session.tenantId, roles: session.roles });
  const refreshToken = await ctx.sessions.issueRefreshToken(session.sid, session.userId);
  return { accessToken, refreshToken, expiresIn: ACCESS_TOKEN_TTL_SECONDS };
}
