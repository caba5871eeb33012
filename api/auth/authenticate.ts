import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { timingSafeEqualHex } from '../../shared/crypto/index.js';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors.js';
import type { ApiContext } from '../context.js';
import type { Session } from './sessions.js';
import type { GuestClaims } from './tokens.js';

export const SESSION_COOKIE = 'botserver_session';
export const CSRF_COOKIE = 'botserver_csrf';
export const CSRF_HEADER = 'x-csrf-token';

export interface RequestAuth {
  userId: string;
  tenantId: string;
  roles: string[];
  sid: string;
  via: 'bearer' | 'cookie';
  session: Session;
}

declare module 'express-serve-static-core' {
  interface Request {
    auth?: RequestAuth;
    guest?: GuestClaims;
  }
}

export type Caller = { kind: 'user'; auth: RequestAuth } | { kind: 'guest'; guest: GuestClaims };

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function bearerToken(req: Request): string | undefined {
  const header = req.get('authorization');
  if (header === undefined) return undefined;
  const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header.trim());
  if (match?.[1] === undefined) throw new UnauthorizedError('unauthorized', 'Malformed Authorization header');
  return match[1];
}

/** A bearer token is an access token (with a live session) or a guest token; anything else is refused. */
export async function identifyBearer(ctx: ApiContext, token: string): Promise<Caller> {
  const header = token.split('.')[0] ?? '';
  let typ: unknown;
  try {
    typ = (JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as { typ?: unknown }).typ;
  } catch {
    throw new UnauthorizedError('unauthorized', 'The access token is not valid');
  }
  if (typ === 'guest+jwt') return { kind: 'guest', guest: await ctx.tokens.verifyGuest(token) };
  return { kind: 'user', auth: await fromBearer(ctx, token) };
}

async function fromBearer(ctx: ApiContext, token: string): Promise<RequestAuth> {
  const claims = await ctx.tokens.verify(token);
  const session = await ctx.sessions.touch(claims.sid);
  if (session === undefined || session.userId !== claims.sub) throw new UnauthorizedError('unauthorized', 'The session has ended');
  return { userId: session.userId, tenantId: session.tenantId, roles: session.roles, sid: session.sid, via: 'bearer', session };
}

/**
 * The live session named by a session cookie value `<sid>.<secret>`, or undefined. No CSRF check: callers add the one
 * that fits their route (the X-CSRF-Token header here; an Origin check for Bull Board, whose UI cannot send it).
 */
export async function sessionFromCookie(ctx: ApiContext, cookie: string): Promise<RequestAuth | undefined> {
  const [sid, secret] = cookie.split('.');
  if (sid === undefined || secret === undefined || !/^[0-9a-f-]{36}$/.test(sid)) return undefined;
  const session = await ctx.sessions.touch(sid);
  if (session === undefined || !ctx.sessions.cookieMatches(session, secret)) return undefined;
  return { userId: session.userId, tenantId: session.tenantId, roles: session.roles, sid, via: 'cookie', session };
}

export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method);
}

async function fromCookie(ctx: ApiContext, req: Request, cookie: string): Promise<RequestAuth | undefined> {
  const auth = await sessionFromCookie(ctx, cookie);
  if (auth === undefined) return undefined;
  if (!SAFE_METHODS.has(req.method) && !timingSafeEqualHex(req.get(CSRF_HEADER) ?? '', ctx.sessions.csrfToken(auth.sid))) {
    throw new ForbiddenError('csrf_failed', 'Missing or wrong CSRF token');
  }
  return auth;
}

/**
 * Identifies the caller from a bearer access token (verified, and its session still alive) or the browser's
 * session cookie (with CSRF check for state-changing requests). A bad bearer token is refused outright; no other
 * header (such as X-User-Id) is ever believed.
 */
export function authenticate(ctx: ApiContext): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const run = async (): Promise<void> => {
      const token = bearerToken(req);
      if (token !== undefined) {
        const caller = await identifyBearer(ctx, token);
        if (caller.kind === 'user') req.auth = caller.auth;
        else req.guest = caller.guest;
        return;
      }
      const cookies = req.cookies as Record<string, string> | undefined;
      const cookie = cookies?.[SESSION_COOKIE];
      // A login opens a new session: an old cookie neither authenticates it nor needs its CSRF token.
      if (typeof cookie === 'string' && req.path !== '/auth/login') {
        const auth = await fromCookie(ctx, req, cookie);
        if (auth !== undefined) req.auth = auth;
      }
    };
    run().then(() => next(), next);
  };
}

export function requireAuth(req: Request): RequestAuth {
  if (req.auth === undefined) throw new UnauthorizedError();
  return req.auth;
}

/** Routes an account may use while it still has its one-time password or has yet to enrol in MFA. */
const PASSWORD_CHANGE_ALLOWED = new Set(['/auth/login', '/auth/password', '/auth/logout']);
const MFA_ENROLMENT_ALLOWED = new Set(['/auth/logout', '/auth/password', '/auth/mfa/setup', '/auth/mfa/verify', '/api/me']);

/** Enforces the account's pending duties before anything else: change the one-time password, enrol in MFA. */
export function accountDuties(ctx: ApiContext): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const auth = req.auth;
    if (auth === undefined) return next();
    if (auth.session.mustChangePassword && !PASSWORD_CHANGE_ALLOWED.has(req.path)) {
      return next(new ForbiddenError('password_change_required', 'Change the one-time password first (POST /auth/password)'));
    }
    const privileged = auth.roles.includes('admin') || auth.roles.includes('operator');
    if (ctx.kernel.config.requireMfa && privileged && !auth.session.mfaEnabled && !MFA_ENROLMENT_ALLOWED.has(req.path)) {
      return next(new ForbiddenError('mfa_enrollment_required', 'Enrol in multi-factor authentication first (POST /auth/mfa/setup)'));
    }
    next();
  };
}
