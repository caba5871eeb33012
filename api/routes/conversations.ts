import { Router, type Request } from 'express';
import { z } from 'zod';
import { listMessages } from '../../shared/chat/index.js';
import { isUuid } from '../../shared/db/index.js';
import { NotFoundError } from '../../shared/errors.js';
import { actorOf, callerOf, tenantOf, withConversation } from '../chat/access.js';
import { acceptUserMessage, attachmentIdsSchema } from '../chat/send.js';
import type { ApiContext } from '../context.js';
import { parseInput } from '../http/validate.js';

export const sendSchema = z
  .strictObject({ text: z.string().trim(), clientMessageId: z.string().min(1).max(100).optional(), attachments: attachmentIdsSchema.optional() })
  .refine((input) => input.text.length > 0 || (input.attachments?.length ?? 0) > 0, { message: 'A message needs text or an attachment', path: ['text'] });
export const historySchema = z.strictObject({ after: z.uuid().optional(), limit: z.coerce.number().int().min(1).max(500).optional() });

function conversationId(req: Request): string {
  const id = req.params.id;
  if (!isUuid(id)) throw new NotFoundError('No such conversation');
  return id;
}

export function conversationRoutes(ctx: ApiContext): Router {
  const router = Router();

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
    const accepted = await acceptUserMessage(ctx, caller, id, input.text, input.clientMessageId, { via: 'rest', ip: req.ip ?? null, requestId: req.requestId }, input.attachments);
    res.status(202).json({ messageId: accepted.messageId });
  });

  return router;
}
