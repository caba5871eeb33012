import { z } from 'zod';

/**
 * Response shapes of the HTTP API, for the OpenAPI document and for tests that hold responses to it. Request
 * schemas live beside their routes (the routes parse with them); these describe what the routes send back.
 */

export const errorSchema = z
  .strictObject({
    error: z.string().describe('Stable machine-readable code, e.g. invalid_request, not_found, rate_limited'),
    message: z.string().describe('Human-readable text; never a stack trace or a library message'),
    requestId: z.string().describe('Also in the X-Request-Id header and in the server logs'),
    field: z.string().optional().describe('The offending input field, for validation errors'),
  })
  .describe('Every error response (4xx and 5xx)');

const id = z.uuid();
const timestamp = z.iso.datetime({ offset: true });

export const tokenPairSchema = z.strictObject({
  accessToken: z.string().describe('RS256 JWT, short-lived'),
  refreshToken: z.string().describe('Opaque, single use; rotated on every refresh'),
  expiresIn: z.number().int().positive().describe('Seconds until the access token expires'),
  csrfToken: z.string().optional().describe('With ?cookie=1: send it as X-CSRF-Token on state-changing cookie requests'),
  passwordChangeRequired: z.literal(true).optional().describe('The account still has its one-time password'),
});

export const mfaSetupSchema = z.strictObject({ secret: z.string(), otpauthUrl: z.string() });
export const recoveryCodesSchema = z.strictObject({ recoveryCodes: z.array(z.string()).length(10) });

export const jwksSchema = z.looseObject({ keys: z.array(z.looseObject({ kty: z.string(), kid: z.string().optional() })) });

export const meSchema = z.strictObject({ id, email: z.string(), tenantId: id, roles: z.array(z.string()), mfa: z.boolean() });

export const createdUserSchema = z.strictObject({
  id,
  email: z.string(),
  role: z.enum(['admin', 'operator', 'user']),
  tenant: z.string(),
  password: z.string().describe('One-time password, shown in this response only; must be changed at first login'),
});

const botSummaryFields = { id, name: z.string(), public: z.boolean(), greeting: z.string().nullable() };
export const botSummarySchema = z.strictObject(botSummaryFields);
export const botSchema = z.strictObject({
  ...botSummaryFields,
  rules: z.array(z.strictObject({ match: z.string(), reply: z.string() })),
  llm: z.looseObject({}).nullable(),
  email: z.strictObject({ configured: z.literal(true) }).nullable().describe('Whether an e-mail channel is configured; its settings are never returned'),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export const botListSchema = z.strictObject({
  bots: z.array(z.union([botSchema, botSummarySchema])).describe('Staff see every field; users see the summary'),
});

export const createdIdSchema = z.strictObject({ id });
export const guestTokenSchema = z.strictObject({ token: z.string().describe('Guest JWT: may join and write this conversation only'), conversationId: id });
export const socketTokenSchema = z.strictObject({ token: z.string().describe('Short-lived access JWT for the Socket.IO handshake') });

export const attachmentSchema = z.strictObject({ id, name: z.string(), size: z.number().int().nonnegative(), type: z.string().describe('Media type sniffed from the bytes') });
export const sourceSchema = z.strictObject({ documentId: id, title: z.string(), position: z.string().describe('page N or section <heading>') });
export const messageListSchema = z.strictObject({
  messages: z.array(z.strictObject({ messageId: id, role: z.enum(['user', 'bot']), text: z.string(), createdAt: timestamp, attachments: z.array(attachmentSchema).optional(), sources: z.array(sourceSchema).optional() })).describe('Oldest first, decrypted'),
});
export const fileSchema = z.strictObject({
  id,
  name: z.string().describe('The sanitised file name'),
  size: z.number().int().nonnegative(),
  type: z.string().describe('Media type sniffed from the bytes at upload'),
  status: z.enum(['pending', 'stored', 'failed']),
  sha256: z.string().nullable().describe('Of the plaintext, once stored'),
  source: z.enum(['upload', 'email']),
  failureReason: z.string().nullable(),
  createdAt: z.string(),
});
export const knowledgeDocumentSchema = z.strictObject({
  id,
  botId: id,
  title: z.string(),
  status: z.enum(['pending', 'indexed', 'failed']),
  reason: z.string().nullable().describe('Why it failed'),
  chunks: z.number().int().nonnegative(),
  fileId: id.nullable(),
  type: z.string(),
  createdAt: z.string(),
});
export const knowledgeListSchema = z.strictObject({ documents: z.array(knowledgeDocumentSchema).describe('Newest first') });
export const acceptedDocumentSchema = z.strictObject({ id, status: z.literal('pending') });
export const knowledgeSearchSchema = z.strictObject({
  results: z.array(z.strictObject({ documentId: id, title: z.string(), position: z.string(), text: z.string(), score: z.number() })).describe('Best first'),
});
export const acceptedFileSchema = z.strictObject({ id, status: z.literal('pending') });
export const acceptedMessageSchema = z.strictObject({ messageId: id });

export const healthSchema = z.strictObject({ status: z.literal('ok') });
export const readySchema = z.strictObject({ status: z.enum(['ready', 'unavailable']), redis: z.enum(['ok', 'down']), postgres: z.enum(['ok', 'down']) });

const auditEventSchema = z.strictObject({
  id: z.string(),
  time: timestamp,
  type: z.string(),
  actor: z.string().nullable(),
  target: z.string().nullable(),
  outcome: z.string(),
  ip: z.string().nullable(),
  requestId: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
});
export const auditListSchema = z.strictObject({ events: z.array(auditEventSchema).describe('Newest first') });
export const auditVerifySchema = z.looseObject({ ok: z.boolean(), checked: z.number().int(), firstBrokenId: z.string().optional() });

export const userExportSchema = z
  .looseObject({
    exportedAt: timestamp,
    account: z.looseObject({ id, email: z.string() }),
    conversations: z.array(z.looseObject({ id })),
    files: z.array(z.looseObject({ id })),
    knowledge: z.array(z.looseObject({ id })),
    auditEvents: z.array(auditEventSchema),
  })
  .describe('Every stored datum about the caller, decrypted');
export const erasureSchema = z.looseObject({ status: z.literal('erased'), subject: z.string().describe('Pseudonym the audit trail keeps') });

/** The document itself: an OpenAPI 3.1 object (described, not re-validated). */
export const openApiDocumentSchema = z.looseObject({ openapi: z.string(), info: z.looseObject({}), paths: z.record(z.string(), z.unknown()) });
