import { randomUUID } from 'node:crypto';
import { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import { createRun, failRun, latestRun, openRun, type VerifyRunView } from '../../shared/audit/index.js';
import { UnavailableError } from '../../shared/errors.js';
import { AUDIT_VERIFY_JOB } from '../../shared/queue/index.js';
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

/** `POST /api/audit/verify`: `{}` walks on from the last verified checkpoint; `{full:true}` from the first row. */
export const auditVerifyRequestSchema = z.strictObject({ full: z.boolean().optional() });

/** BullMQ states in which a verify job will still run. */
const PENDING_JOB_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/**
 * The run a new request joins: the one still queued or running, as long as its job still exists in the queue (a
 * run whose job was lost, e.g. with Redis, is marked failed so that it cannot block verification for good).
 */
async function pendingRun(ctx: ApiContext): Promise<VerifyRunView | undefined> {
  const open = await openRun(ctx.kernel.db);
  if (open === undefined) return undefined;
  const job = await ctx.kernel.queues.queue('audit').getJob(open.jobId);
  if (job !== undefined && PENDING_JOB_STATES.has(await job.getState())) return open;
  await failRun(ctx.kernel.db, open.jobId);
  return undefined;
}

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
 * `POST /api/audit/verify` (admin): queues a verification of the chain for the audit worker (202 `{jobId}`; a run
 * still queued or running is joined instead of starting another). `GET /api/audit/verify` (admin): the latest run.
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

  router.post('/api/audit/verify', admin, async (req, res) => {
    const input = parseInput(auditVerifyRequestSchema, req.body);
    const full = input.full === true;
    let jobId = (await pendingRun(ctx))?.jobId;
    const joined = jobId !== undefined;
    if (jobId === undefined) {
      jobId = randomUUID();
      await createRun(ctx.kernel.db, { id: jobId, full });
      try {
        await ctx.kernel.queues.enqueue('audit', AUDIT_VERIFY_JOB, { runId: jobId, full }, { jobId });
      } catch (error) {
        await failRun(ctx.kernel.db, jobId);
        throw new UnavailableError('The verification could not be queued', error);
      }
    }
    await ctx.audit(req, { type: 'admin.action', outcome: 'success', target: 'audit-chain', details: { action: 'audit_verify', full, jobId, joined } });
    res.setHeader('Cache-Control', 'no-store');
    res.status(202).json({ jobId });
  });

  router.get('/api/audit/verify', admin, async (_req, res) => {
    const run = await latestRun(ctx.kernel.db);
    res.setHeader('Cache-Control', 'no-store');
    res.json(run ?? { state: 'none' });
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
