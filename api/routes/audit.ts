import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { verifyAuditChain } from '../../shared/audit/index.js';
import { requireAuth } from '../auth/authenticate.js';
import { requireRole } from '../auth/rbac.js';
import type { ApiContext } from '../context.js';
import { parseInput } from '../http/validate.js';
import type { AuditRow } from '../../shared/audit/index.js';

/** `type` is an exact event type (`auth.login.success`) or a prefix ending with a dot (`auth.`). */
export const auditQuerySchema = z.strictObject({
  type: z
    .string()
    .max(100)
    .regex(/^[a-z]+(\.[a-z]+)*\.?$/, 'must be an event type such as auth.login.success, or a prefix ending with a dot such as auth.')
    .optional(),
  actor: z.string().min(1).max(200).optional(),
  since: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time such as 2030-01-31T12:00:00Z' }).or(z.iso.date()).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export type AuditViewRow = Pick<AuditRow, 'id' | 'time' | 'type' | 'actor' | 'target' | 'outcome' | 'ip' | 'request_id' | 'details'>;

export interface AuditEventView {
  id: string;
  time: string;
  type: string;
  actor: string | null;
  target: string | null;
  outcome: string;
  ip: string | null;
  requestId: string | null;
  details: Record<string, unknown>;
}

export const AUDIT_VIEW_COLUMNS = ['id', 'time', 'type', 'actor', 'target', 'outcome', 'ip', 'request_id', 'details'] as const;

export function auditEventView(row: AuditViewRow): AuditEventView {
  return {
    id: String(row.id),
    time: row.time.toISOString(),
    type: row.type,
    actor: row.actor,
    target: row.target,
    outcome: row.outcome,
    ip: row.ip,
    requestId: row.request_id,
    details: row.details,
  };
}

/**
 * `GET /api/audit` (admin): the admin's tenant's events, newest first. audit_events has no row-level security (the
 * chain spans tenants), so the tenant filter here is what scopes it; events without a tenant are never shown.
 * `GET /api/audit/verify` (admin): walks the whole chain.
 */
export function auditRoutes(ctx: ApiContext): Router {
  const router = Router();
  const admin = requireRole(ctx, 'admin');

  router.get('/api/audit', admin, async (req, res) => {
    const auth = requireAuth(req);
    const query = parseInput(auditQuerySchema, req.query);
    let rows = ctx.kernel.db('audit_events').where('tenant_id', auth.tenantId);
    if (query.type !== undefined) {
      // The pattern admits only [a-z.], so it holds no LIKE wildcard.
      rows = query.type.endsWith('.') ? rows.where('type', 'like', `${query.type}%`) : rows.where('type', query.type);
    }
    if (query.actor !== undefined) rows = rows.where('actor', query.actor);
    if (query.since !== undefined) rows = rows.where('time', '>=', new Date(query.since));
    const found = await rows.orderBy('id', 'desc').limit(query.limit).select<AuditViewRow[]>(AUDIT_VIEW_COLUMNS);
    res.setHeader('Cache-Control', 'no-store');
    res.json({ events: found.map(auditEventView) });
  });

  router.get('/api/audit/verify', admin, async (_req, res) => {
    const { keys } = ctx.kernel;
    const result = await verifyAuditChain(ctx.kernel.db, { chainKey: keys.auditChainKey, pseudonymKey: keys.pseudonymKey });
    res.setHeader('Cache-Control', 'no-store');
    res.json(result);
  });

  return router;
}

/**
 * `api.call` events for a sampled fraction (BOTSERVER_AUDIT_API_SAMPLE_RATE) of requests: method, route pattern
 * (never the raw path, which may carry ids or tokens), status and duration, recorded once the response is sent.
 */
export function auditApiCalls(ctx: ApiContext, random: () => number = Math.random): RequestHandler {
  const rate = ctx.kernel.config.auditApiSampleRate;
  return (req: Request, res: Response, next: NextFunction) => {
    if (rate <= 0 || random() >= rate) return next();
    const started = process.hrtime.bigint();
    res.once('finish', () => {
      const durationMs = Number((process.hrtime.bigint() - started) / 1000n) / 1000;
      const route = routePattern(req);
      const status = res.statusCode;
      void ctx.audit(req, {
        type: 'api.call',
        outcome: status < 400 ? 'success' : status === 401 || status === 403 || status === 429 ? 'denied' : 'failure',
        target: `${req.method} ${route}`,
        details: { method: req.method, route, status, durationMs, sampleRate: rate },
      });
    });
    next();
  };
}

function routePattern(req: Request): string {
  const route = (req.route as { path?: unknown } | undefined)?.path;
  return typeof route === 'string' ? `${req.baseUrl}${route}` : 'unmatched';
}
