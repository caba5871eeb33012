import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { Router, type Express, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import helmet from 'helmet';
import type { AuditOutcome } from '../../shared/audit/index.js';
import { ForbiddenError, UnauthorizedError } from '../../shared/errors.js';
import { QUEUE_NAMES, type QueueName } from '../../shared/queue/index.js';
import { timingSafeEqualHex } from '../../shared/crypto/index.js';
import { accountDuties, CSRF_HEADER, identifyBearer, isSafeMethod, SESSION_COOKIE, sessionFromCookie } from '../auth/authenticate.js';
import { requireRole } from '../auth/rbac.js';
import type { ApiContext } from '../context.js';
import { log } from '../../shared/log/index.js';
import { userLimits } from '../http/limits.js';

export const BULL_BOARD_PATH = '/admin/queues';

/**
 * The board's page needs what the rest of the site refuses: its `<base href>`, inline styles (React and its loading
 * screen) and `data:` images. It still loads scripts, fonts and data from this origin only.
 */
const boardCsp = helmet.contentSecurityPolicy({
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    baseUri: ["'self'"],
    connectSrc: ["'self'"],
    fontSrc: ["'self'", 'data:'],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    imgSrc: ["'self'", 'data:'],
    objectSrc: ["'none'"],
    scriptSrc: ["'self'"],
    scriptSrcAttr: ["'none'"],
    styleSrc: ["'self'", "'unsafe-inline'"],
  },
});

/** Bull Board's page links a web font from a third party; an admin page does not call out (and the CSP forbids it). */
const THIRD_PARTY_STYLESHEET = /<link\b[^>]*\bhref="https?:\/\/[^"]*"[^>]*rel="stylesheet"[^>]*>|<link\b[^>]*rel="stylesheet"[^>]*\bhref="https?:\/\/[^"]*"[^>]*>/gi;

function stripThirdPartyStylesheets(_req: Request, res: Response, next: NextFunction): void {
  const send = res.send.bind(res);
  res.send = (body?: unknown) => send(typeof body === 'string' && (res.get('content-type') ?? 'text/html').startsWith('text/html') ? body.replace(THIRD_PARTY_STYLESHEET, '') : body);
  next();
}

/**
 * The caller of a board request: a bearer access token or the browser's session cookie. The board is mounted
 * before the global `authenticate`, because that one demands the X-CSRF-Token header on every state-changing cookie
 * request, and Bull Board's UI cannot send it. CSRF protection here is `sameOriginOnly` instead.
 */
function boardCaller(ctx: ApiContext): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const run = async (): Promise<void> => {
      const header = req.get('authorization');
      if (header !== undefined) {
        const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(header.trim());
        const caller = match?.[1] === undefined ? undefined : await identifyBearer(ctx, match[1]);
        if (caller?.kind !== 'user') throw new UnauthorizedError('unauthorized', 'The access token is not valid');
        req.auth = caller.auth;
        return;
      }
      const cookie = (req.cookies as Record<string, string> | undefined)?.[SESSION_COOKIE];
      if (typeof cookie === 'string') {
        const auth = await sessionFromCookie(ctx, cookie);
        if (auth !== undefined) req.auth = auth;
      }
      if (req.auth !== undefined) return;
      // Anonymous: a browser asking for a page goes to the login page, anything else gets 401.
      if (req.method === 'GET' && req.accepts(['json', 'html']) === 'html' && req.get('x-requested-with') === undefined) {
        res.redirect(302, '/');
        return;
      }
      throw new UnauthorizedError();
    };
    run().then(() => (res.headersSent ? undefined : next()), next);
  };
}

function originOf(value: string | undefined): string | undefined {
  if (value === undefined || value === '' || value === 'null') return undefined;
  try {
    return new URL(value).origin;
  } catch {
    return undefined;
  }
}

/**
 * CSRF protection for cookie sessions: a state-changing request must come from a page of this origin (or a
 * whitelisted one), by its Origin header or, failing that, its Referer; a request naming neither is refused. The
 * session cookie is SameSite=Strict besides. A matching X-CSRF-Token header is accepted too (for scripts).
 */
function sameOriginOnly(ctx: ApiContext): RequestHandler {
  const allowed = new Set(ctx.kernel.config.allowedOrigins);
  return (req: Request, _res: Response, next: NextFunction) => {
    const auth = req.auth;
    if (isSafeMethod(req.method) || auth === undefined || auth.via !== 'cookie') return next();
    const token = req.get(CSRF_HEADER);
    if (token !== undefined && timingSafeEqualHex(token, ctx.sessions.csrfToken(auth.sid))) return next();
    const origin = originOf(req.get('origin')) ?? originOf(req.get('referer'));
    const own = `${req.protocol}://${req.get('host') ?? ''}`;
    if (origin !== undefined && (origin === own || allowed.has(origin))) return next();
    next(new ForbiddenError('csrf_failed', 'A state-changing board request must come from this site'));
  };
}

const STATUS_CODES: Readonly<Record<number, string>> = { 400: 'invalid_request', 403: 'forbidden', 404: 'not_found', 409: 'conflict' };

/**
 * The API's error body for one of Bull Board's (`{error:{key:"ERRORS.QUEUE_NOT_FOUND"}, message?, details?}`): the
 * code comes from its translation key (a fixed list, so `queue_not_found`), the message is written from the key,
 * and nothing the library said is kept (its 500s carry the thrown error's message and, in development, a stack).
 */
export function boardErrorBody(status: number, body: unknown, requestId: string): { error: string; message: string; requestId: string } {
  if (status >= 500) return { error: 'internal_error', message: 'Internal server error', requestId };
  const key = typeof body === 'object' && body !== null && 'error' in body ? (body.error as { key?: unknown } | null)?.key : undefined;
  const name = typeof key === 'string' ? /^ERRORS\.([A-Z][A-Z0-9_]{0,60})$/.exec(key)?.[1] : undefined;
  if (name === undefined) return { error: STATUS_CODES[status] ?? 'invalid_request', message: 'The queue board refused the request', requestId };
  const words = name.toLowerCase().replaceAll('_', ' ');
  return { error: name.toLowerCase(), message: `${words.charAt(0).toUpperCase()}${words.slice(1)}`, requestId };
}

/** Rewrites the board's own error answers into `{error,message,requestId}`; bodies already in that shape pass. */
function boardErrors(req: Request, res: Response, next: NextFunction): void {
  const json = res.json.bind(res);
  res.json = (body?: unknown) => {
    if (res.statusCode < 400) return json(body);
    const ours = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string' && 'requestId' in body;
    if (ours) return json(body);
    if (res.statusCode >= 500) {
      const message = typeof body === 'object' && body !== null && typeof (body as { message?: unknown }).message === 'string' ? (body as { message: string }).message : 'unknown';
      log.error('bull board request failed', { requestId: req.requestId, method: req.method, status: res.statusCode, error: message.slice(0, 300) });
    }
    return json(boardErrorBody(res.statusCode, body, req.requestId));
  };
  next();
}

export interface BoardAction {
  action: string;
  queue?: QueueName;
  jobId?: string;
  status?: string;
  schedulerId?: string;
}

const JOB_ACTIONS: Readonly<Record<string, string>> = { retry: 'retry', clean: 'remove', promote: 'promote', 'update-data': 'update-data', delay: 'delay' };

const isQueueName = (value: string | undefined): value is QueueName => (QUEUE_NAMES as readonly string[]).includes(value ?? '');

/** A path segment decoded; a malformed escape (`%c0%ae`) stays as it is: it names no queue or action either way. */
function decodeSegment(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** What a board API request does, from its path under the mount (following Bull Board's own route table). */
export function boardActionOf(method: string, path: string): BoardAction {
  const parts = path.split('/').filter((part) => part !== '').map(decodeSegment);
  const fallback = { action: `${method.toLowerCase()} ${path}` };
  if (parts[0] !== 'api') return fallback;
  if (parts[1] === 'metrics') return { action: parts.slice(1).join('-') };
  if (parts[1] !== 'queues') return fallback;
  const queue = parts[2];
  if ((queue === 'pause' || queue === 'resume') && parts.length === 3) return { action: `${queue}-all` };
  if (!isQueueName(queue)) return fallback;
  const [first, second, third] = parts.slice(3);
  if (first === undefined) return { action: method.toLowerCase(), queue };
  switch (first) {
    case 'add':
    case 'pause':
    case 'resume':
    case 'concurrency':
    case 'empty':
    case 'obliterate':
      if (second === undefined) return { action: first, queue };
      break;
    case 'promote':
      if (second === undefined) return { action: 'promote-all', queue };
      break;
    case 'retry':
    case 'clean':
      if (second !== undefined && third === undefined) return { action: `${first}-all`, queue, status: second };
      break;
    case 'rate-limit':
      if (second === undefined) return { action: 'rate-limit', queue };
      if (second === 'release' && third === undefined) return { action: 'rate-limit-release', queue };
      break;
    case 'job-schedulers':
      if (second !== undefined) return { action: `job-scheduler-${third ?? 'update'}`, queue, schedulerId: second };
      break;
    default:
      break;
  }
  return { action: JOB_ACTIONS[second ?? ''] ?? `job-${second ?? method.toLowerCase()}`, queue, jobId: first };
}

function outcomeOf(status: number): AuditOutcome {
  if (status < 400) return 'success';
  return status === 401 || status === 403 ? 'denied' : 'failure';
}

/** Every state-changing board request becomes an `admin.action` audit event once answered, whatever its outcome. */
function auditActions(ctx: ApiContext): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (isSafeMethod(req.method)) return next();
    const action = boardActionOf(req.method, req.path);
    res.once('finish', () => {
      void ctx.audit(req, {
        type: 'admin.action',
        outcome: outcomeOf(res.statusCode),
        target: action.queue === undefined ? 'bull-board' : `queue:${action.queue}${action.jobId === undefined ? '' : `:job:${action.jobId}`}`,
        details: { tool: 'bull-board', ...action, status: res.statusCode },
      });
    });
    next();
  };
}

/**
 * The queues are shared by every tenant, so the board belongs to the people who run the server: the admins of the
 * operator tenant (`default`, the tenant `npm start` bootstraps its admin in). Other tenants' admins get 403.
 */
export const OPERATOR_TENANT = 'default';

function requireOperatorTenant(ctx: ApiContext): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const auth = req.auth;
    if (auth === undefined) return next(new UnauthorizedError());
    ctx.kernel
      .db('tenants')
      .where({ id: auth.tenantId })
      .first<{ name: string } | undefined>('name')
      .then(async (tenant) => {
        if (tenant?.name === OPERATOR_TENANT) return next();
        await ctx.audit(req, { type: 'authz.denied', outcome: 'denied', target: `${req.method} ${req.baseUrl}${req.path}`, details: { required: 'operator_tenant_admin' } });
        next(new ForbiddenError());
      })
      .catch(next);
  };
}

/**
 * Bull Board at /admin/queues for every queue of the catalogue, read-write, for the operator tenant's admins only: anonymous callers get
 * 401 (a browser page request is sent to `/`), others 403 (audited). Job data is shown as stored: the encrypted
 * envelope. Mount it after the cookie parser and before the global `authenticate` (see `boardCaller`).
 */
export function bullBoardRoutes(ctx: ApiContext): Router {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: QUEUE_NAMES.map((name) => new BullMQAdapter(ctx.kernel.queues.queue(name), { description: `botserver ${name} queue (payloads are encrypted)` })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'botserver queues', hideDocsLink: true } },
  });
  const board = serverAdapter.getRouter() as Express;
  board.disable('x-powered-by');

  const perUser = userLimits(ctx);
  const router = Router();
  router.use(
    BULL_BOARD_PATH,
    boardCaller(ctx),
    // The board polls several routes every few seconds: only its actions spend the per-user budget (the per-IP
    // budget still covers everything).
    (req: Request, res: Response, next: NextFunction) => (isSafeMethod(req.method) ? next() : perUser(req, res, next)),
    accountDuties(ctx),
    requireRole(ctx, 'admin'),
    requireOperatorTenant(ctx),
    auditActions(ctx),
    sameOriginOnly(ctx),
    boardCsp,
    stripThirdPartyStylesheets,
    boardErrors,
    board,
  );
  return router;
}
