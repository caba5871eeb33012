import { Router } from 'express';
import { z } from 'zod';
import { createAccount, decryptEmail, findUserById, ROLES } from '../../shared/accounts/index.js';
import { UnauthorizedError } from '../../shared/errors.js';
import { requireAuth } from '../auth/authenticate.js';
import { requireRole } from '../auth/rbac.js';
import type { ApiContext } from '../context.js';
import { parseInput } from '../http/validate.js';

export const newUserSchema = z.strictObject({
  email: z.email({ message: 'must be an e-mail address' }).max(254),
  role: z.enum(ROLES, { message: 'must be admin, operator or user' }),
});

export function userRoutes(ctx: ApiContext): Router {
  const router = Router();

  router.get('/api/me', async (req, res) => {
    const auth = requireAuth(req);
    const user = await findUserById(ctx.kernel.db, auth.userId);
    if (user === undefined || user.erased_at !== null) throw new UnauthorizedError();
    res.json({ id: user.id, email: decryptEmail(ctx.kernel.keys, user), tenantId: user.tenant_id, roles: auth.roles, mfa: user.mfa_enabled });
  });

  /** An admin creates an account in their own tenant; the one-time password is in this response only. */
  router.post('/api/users', requireRole(ctx, 'admin'), async (req, res) => {
    const auth = requireAuth(req);
    const input = parseInput(newUserSchema, req.body);
    const tenant = await ctx.kernel.db('tenants').where({ id: auth.tenantId }).first<{ name: string } | undefined>('name');
    if (tenant === undefined) throw new UnauthorizedError();
    const created = await createAccount(ctx.kernel.db, ctx.kernel.keys, { ...input, tenant: tenant.name });
    await ctx.audit(req, { type: 'config.change', outcome: 'success', target: `user:${created.id}`, details: { change: 'user_created', role: created.role } });
    res.status(201).json({ id: created.id, email: created.email, role: created.role, tenant: created.tenant, password: created.password });
  });

  return router;
}
