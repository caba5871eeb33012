import { Router, type Request } from 'express';
import { createAccount, decryptEmail, findUserById, replaceMemberships } from '../../shared/accounts/index.js';
import { isUuid, withTenant } from '../../shared/db/index.js';
import { ConflictError, NotFoundError, UnauthorizedError } from '../../shared/errors.js';
import { requireAuth, type RequestAuth } from '../auth/authenticate.js';
import { requireRole } from '../auth/rbac.js';
import type { ApiContext } from '../context.js';
import { noFieldsSchema, parseInput } from '../http/validate.js';
import { OPERATOR_TENANT } from '../routes/bullBoard.js';
import { listUserViews, type UserView } from './present.js';
import { newUserSchema, updateUserSchema } from './schema.js';

function userId(req: Request): string {
  const id = req.params.id;
  if (!isUuid(id)) throw new NotFoundError('No such user');
  return id;
}

/** The account `id` of the admin's own tenant (another tenant's, an erased or unknown one: 404). */
async function findTenantUser(ctx: ApiContext, auth: RequestAuth, id: string): Promise<UserView> {
  const [user] = await withTenant(ctx.kernel.db, auth.tenantId, (trx) => listUserViews(trx, ctx.kernel.keys, auth.tenantId, id));
  if (user === undefined) throw new NotFoundError('No such user');
  return user;
}

export function userRoutes(ctx: ApiContext): Router {
  const router = Router();
  const admin = requireRole(ctx, 'admin');

  router.get('/api/me', async (req, res) => {
    const auth = requireAuth(req);
    const user = await findUserById(ctx.kernel.db, auth.userId);
    if (user === undefined || user.erased_at !== null) throw new UnauthorizedError();
    const tenant = await ctx.kernel.db('tenants').where({ id: auth.tenantId }).first<{ name: string } | undefined>('name');
    res.json({
      id: user.id,
      email: decryptEmail(ctx.kernel.keys, user),
      tenantId: user.tenant_id,
      roles: auth.roles,
      mfa: user.mfa_enabled,
      // Bull Board shows every tenant's queues: only the operator tenant's admins may open it.
      queues: auth.roles.includes('admin') && tenant?.name === OPERATOR_TENANT,
    });
  });

  router.get('/api/users', admin, async (req, res) => {
    const auth = requireAuth(req);
    const users = await withTenant(ctx.kernel.db, auth.tenantId, (trx) => listUserViews(trx, ctx.kernel.keys, auth.tenantId));
    res.json({ users });
  });

  /** An admin creates an account in their own tenant; the one-time password is in this response only. */
  router.post('/api/users', admin, async (req, res) => {
    const auth = requireAuth(req);
    const input = parseInput(newUserSchema, req.body);
    const tenant = await ctx.kernel.db('tenants').where({ id: auth.tenantId }).first<{ name: string } | undefined>('name');
    if (tenant === undefined) throw new UnauthorizedError();
    const created = await createAccount(ctx.kernel.db, ctx.kernel.keys, { ...input, tenant: tenant.name });
    await ctx.audit(req, { type: 'config.change', outcome: 'success', target: `user:${created.id}`, details: { change: 'user_created', role: created.role } });
    res.status(201).json({ id: created.id, email: created.email, role: created.role, tenant: created.tenant, password: created.password });
  });

  /**
   * Role and disabled flag. Either change ends the account's sessions (and sockets) at once: a session carries the
   * roles it was opened with, so a new role applies from the next login, and a disabled account cannot log in.
   */
  router.patch('/api/users/:id', admin, async (req, res) => {
    const auth = requireAuth(req);
    const id = userId(req);
    const input = parseInput(updateUserSchema, req.body);
    const before = await findTenantUser(ctx, auth, id);
    if (id === auth.userId) throw new ConflictError('cannot_modify_self', 'An admin cannot change their own role or disable themselves');
    if (input.disabled !== undefined && input.disabled !== before.disabled) {
      await ctx.kernel.db('users').where({ id, tenant_id: auth.tenantId }).update({ disabled: input.disabled, updated_at: ctx.kernel.db.fn.now() });
    }
    if (input.role !== undefined && input.role !== before.role) await replaceMemberships(ctx.kernel.db, id, auth.tenantId, [input.role]);
    const after = await findTenantUser(ctx, auth, id);
    const changed = Object.fromEntries(
      (['role', 'disabled'] as const).filter((field) => before[field] !== after[field]).map((field) => [field, { from: before[field], to: after[field] }]),
    );
    if (Object.keys(changed).length > 0) {
      await ctx.sessions.revokeAll(id);
      await ctx.audit(req, { type: 'config.change', outcome: 'success', target: `user:${id}`, details: { change: 'user_updated', ...changed } });
    }
    res.json(after);
  });

  /** Ends every session of the account, on every device, and its open sockets. */
  router.delete('/api/users/:id/sessions', admin, async (req, res) => {
    const auth = requireAuth(req);
    const id = userId(req);
    parseInput(noFieldsSchema, req.body);
    await findTenantUser(ctx, auth, id);
    const ended = await ctx.sessions.revokeAll(id);
    await ctx.audit(req, { type: 'admin.action', outcome: 'success', target: `user:${id}`, details: { action: 'sessions_ended', sessions: ended } });
    res.status(204).end();
  });

  return router;
}
