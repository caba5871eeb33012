import { Router } from 'express';
import { requireAuth } from '../auth/authenticate.js';
import { clearSessionCookies } from '../auth/cookies.js';
import type { ApiContext } from '../context.js';
import { eraseUser } from '../gdpr/erase.js';
import { exportUserData } from '../gdpr/export.js';
import { noFieldsSchema, parseInput } from '../http/validate.js';

/** CONTRACT §3: `GET /api/me/export` (everything about the caller, decrypted) and `DELETE /api/me` (erasure). */
export function gdprRoutes(ctx: ApiContext): Router {
  const router = Router();

  router.get('/api/me/export', async (req, res) => {
    const auth = requireAuth(req);
    const data = await exportUserData(ctx, auth);
    await ctx.audit(req, {
      type: 'data.export',
      outcome: 'success',
      target: `user:${auth.userId}`,
      details: { conversations: data.conversations.length, messages: data.conversations.reduce((sum, conversation) => sum + conversation.messages.length, 0), files: data.files.length, knowledge: data.knowledge.length, auditEvents: data.auditEvents.length },
    });
    res.setHeader('Cache-Control', 'no-store');
    res.setHeader('Content-Disposition', 'attachment; filename="botserver-export.json"');
    res.json(data);
  });

  router.delete('/api/me', async (req, res) => {
    const auth = requireAuth(req);
    parseInput(noFieldsSchema, req.body);
    const result = await eraseUser(ctx, { auth, ip: req.ip ?? null, requestId: req.requestId });
    clearSessionCookies(ctx, res);
    res.setHeader('Cache-Control', 'no-store');
    res.status(202).json({ status: 'erased', subject: result.subject });
  });

  return router;
}
