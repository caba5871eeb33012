import { Router, type Request, type Response } from 'express';
import { listMessages } from '../../shared/chat/index.js';
import { isUuid, withTenant } from '../../shared/db/index.js';
import { NotFoundError } from '../../shared/errors.js';
import { requireAuth } from '../auth/authenticate.js';
import { requireRole } from '../auth/rbac.js';
import { actorOf, callerOf, tenantOf, withConversation } from '../chat/access.js';
import { acceptMessage } from '../chat/send.js';
import type { ApiContext } from '../context.js';
import { noFieldsSchema, parseInput } from '../http/validate.js';
import { changeHandoff, type HandoffChange } from './handoff.js';
import { conversationViews, findConversationView, presentConversation, type ConversationViewRow } from './present.js';
import { conversationListSchema, historySchema, sendSchema } from './schema.js';

function conversationId(req: Request): string {
  const id = req.params.id;
  if (!isUuid(id)) throw new NotFoundError('No such conversation');
  return id;
}

export function conversationRoutes(ctx: ApiContext): Router {
  const router = Router();
  const staff = requireRole(ctx, 'admin', 'operator');

  /** The console's list of the tenant's conversations, newest activity first, with the waiting list's length. */
  router.get('/api/conversations', staff, async (req, res) => {
    const auth = requireAuth(req);
    const query = parseInput(conversationListSchema, req.query);
    const { rows, waiting } = await withTenant(ctx.kernel.db, auth.tenantId, async (trx) => {
      const list = conversationViews(trx)
        .orderBy([{ column: 'c.last_activity_at', order: 'desc' }, { column: 'c.id', order: 'desc' }])
        .limit(query.limit);
      if (query.status !== undefined) list.where('c.status', query.status);
      if (query.botId !== undefined) list.where('c.bot_id', query.botId);
      if (query.before !== undefined) list.where('c.last_activity_at', '<', query.before);
      const counted = await trx('conversations').where({ status: 'waiting' }).count<Array<{ count: string }>>({ count: '*' });
      return { rows: (await list) as ConversationViewRow[], waiting: Number(counted[0]?.count ?? 0) };
    });
    res.json({ conversations: rows.map(presentConversation), waiting });
  });

  router.get('/api/conversations/:id', async (req, res) => {
    const id = conversationId(req);
    res.json(await withConversation(ctx, callerOf(req), id, 'read', (trx) => findConversationView(trx, id)));
  });

  router.get('/api/conversations/:id/messages', async (req, res) => {
    const caller = callerOf(req);
    const query = parseInput(historySchema, req.query);
    const messages = await withConversation(ctx, caller, conversationId(req), 'read', (trx) =>
      listMessages(trx, ctx.kernel.keys.columnRing, conversationId(req), { limit: query.limit ?? 200, withAttachments: true, ...(query.after === undefined ? {} : { after: query.after }) }),
    );
    await ctx.audit(req, { type: 'data.read', outcome: 'success', tenantId: tenantOf(caller), actor: actorOf(caller), target: `conversation:${conversationId(req)}`, details: { messages: messages.length } });
    res.json({
      messages: messages.map(({ messageId, role, text, createdAt, attachments, sources }) => ({
        messageId,
        role,
        text,
        createdAt,
        ...(attachments === undefined ? {} : { attachments }),
        ...(sources === undefined ? {} : { sources }),
      })),
    });
  });

  router.post('/api/conversations/:id/messages', async (req, res) => {
    const caller = callerOf(req);
    const id = conversationId(req);
    const input = parseInput(sendSchema, req.body);
    const accepted = await acceptMessage(ctx, caller, id, input.text, input.clientMessageId, { via: 'rest', ip: req.ip ?? null, requestId: req.requestId }, input.attachments);
    res.status(202).json({ messageId: accepted.messageId });
  });

  const handoff = (change: HandoffChange, action?: string) => async (req: Request, res: Response) => {
    const id = conversationId(req);
    parseInput(noFieldsSchema, req.body);
    const { view, changed } = await changeHandoff(ctx, callerOf(req), id, change);
    if (changed && action !== undefined) await ctx.audit(req, { type: 'admin.action', outcome: 'success', target: `conversation:${id}`, details: { action } });
    res.json(view);
  };
  router.post('/api/conversations/:id/handoff', staff, handoff('take-over', 'handoff_started'));
  router.delete('/api/conversations/:id/handoff', staff, handoff('hand-back', 'handoff_ended'));
  router.post('/api/conversations/:id/handoff-request', handoff('ask-for-person'));

  return router;
}
