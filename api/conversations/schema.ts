import { z } from 'zod';
import { CONVERSATION_STATUSES } from '../../shared/chat/index.js';
import { attachmentIdsSchema } from '../chat/send.js';

export const sendSchema = z
  .strictObject({ text: z.string().trim(), clientMessageId: z.string().min(1).max(100).optional(), attachments: attachmentIdsSchema.optional() })
  .refine((input) => input.text.length > 0 || (input.attachments?.length ?? 0) > 0, { message: 'A message needs text or an attachment', path: ['text'] });

export const historySchema = z.strictObject({ after: z.uuid().optional(), limit: z.coerce.number().int().min(1).max(500).optional() });

/** The console's list: newest activity first, pages by the last row's `lastActivityAt`. */
export const conversationListSchema = z.strictObject({
  status: z.enum(CONVERSATION_STATUSES, { message: 'must be bot, waiting or operator' }).optional(),
  botId: z.uuid().optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
  before: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time, the lastActivityAt of the last row seen' }).optional(),
});
