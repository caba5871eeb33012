import { z } from 'zod';

/** Longest text a document may be given inline (a file can be larger, up to BOTSERVER_MAX_UPLOAD_SIZE). */
export const MAX_DOCUMENT_TEXT = 1_000_000;

export const newDocumentSchema = z
  .strictObject({
    title: z.string().trim().min(1).max(200),
    text: z.string().trim().min(1).max(MAX_DOCUMENT_TEXT).optional(),
    fileId: z.uuid().optional(),
  })
  .refine((input) => (input.text === undefined) !== (input.fileId === undefined), { message: 'Give either text or fileId', path: ['text'] });

export const searchQuerySchema = z.strictObject({
  q: z.string().trim().min(1).max(2000),
  limit: z.coerce.number().int().min(1).max(20).optional(),
});
