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

export const meSchema = z.strictObject({
  id,
  email: z.string(),
  tenantId: id,
  roles: z.array(z.string()),
  mfa: z.boolean(),
  queues: z.boolean().describe('Whether the caller may open Bull Board (admins of the operator tenant)'),
});

const roleSchema = z.enum(['admin', 'operator', 'user']);
export const userSchema = z.strictObject({
  id,
  email: z.string(),
  role: roleSchema,
  mfa: z.boolean(),
  disabled: z.boolean(),
  mustChangePassword: z.boolean().describe('Still on its one-time password'),
  createdAt: timestamp,
});
export const userListSchema = z.strictObject({ users: z.array(userSchema).describe('Oldest first') });

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
  rules: z.array(z.strictObject({ match: z.string(), reply: z.string(), handoff: z.boolean().optional() })),
  llm: z.looseObject({}).nullable(),
  email: z.strictObject({ configured: z.literal(true) }).nullable().describe('Whether an e-mail channel is configured; its settings are never returned'),
  allowedOrigins: z.array(z.string()).describe("Origins whose pages may embed the bot's widget"),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export const botListSchema = z.strictObject({
  bots: z.array(z.union([botSchema, botSummarySchema])).describe('Staff see every field; users see the summary'),
});

export const createdIdSchema = z.strictObject({ id });
export const emailQuarantineSchema = z.strictObject({
  mails: z
    .array(
      z.strictObject({
        uidValidity: z.number().int().nonnegative().describe("The mailbox's UIDVALIDITY when the mail was given up on"),
        uid: z.number().int().positive().describe('The mail\'s UID in the INBOX'),
        reason: z.enum(['too_large', 'failed', 'crashed']).describe('too_large: over the size limit, not fetched; failed: errors on every attempt; crashed: the worker died while handling it'),
        attempts: z.number().int().nonnegative(),
        size: z.number().int().nonnegative().describe('Bytes'),
        quarantinedAt: timestamp,
      }),
    )
    .describe('Newest first, at most 200'),
});
export const tryBotSchema = z.strictObject({
  reply: z.string().nullable().describe("The first matching rule's reply; null when none matches (the LLM or the fallback would answer)"),
  rule: z.number().int().nonnegative().nullable().describe('Index of the matching rule'),
  handoff: z.boolean().describe('Whether that rule hands the conversation to a person'),
});
export const conversationSchema = z.strictObject({
  id,
  botId: id,
  botName: z.string(),
  channel: z.enum(['web', 'email']),
  status: z.enum(['bot', 'waiting', 'operator']).describe('Who answers: the bot, nobody yet (a person was asked for), or an operator'),
  visitor: z.enum(['guest', 'user', 'email']),
  operatorId: id.nullable(),
  lastActivityAt: timestamp,
  createdAt: timestamp,
});
export const conversationPageSchema = z.strictObject({
  conversations: z.array(conversationSchema).describe('Newest activity first'),
  waiting: z.number().int().nonnegative().describe("The tenant's conversations waiting for a person"),
});
export const guestTokenSchema = z.strictObject({ token: z.string().describe('Guest JWT: may join and write this conversation only'), conversationId: id });
export const socketTokenSchema = z.strictObject({ token: z.string().describe('Short-lived access JWT for the Socket.IO handshake') });

export const attachmentSchema = z.strictObject({ id, name: z.string(), size: z.number().int().nonnegative(), type: z.string().describe('Media type sniffed from the bytes') });
export const sourceSchema = z.strictObject({ documentId: id, title: z.string(), position: z.string().describe('page N or section <heading>') });
export const messageListSchema = z.strictObject({
  messages: z.array(z.strictObject({ messageId: id, role: z.enum(['user', 'bot', 'operator']), text: z.string(), createdAt: timestamp, attachments: z.array(attachmentSchema).optional(), sources: z.array(sourceSchema).optional() })).describe('Oldest first, decrypted'),
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
export const readySchema = z.strictObject({ status: z.enum(['ready', 'unavailable']), redis: z.enum(['up', 'down']), postgres: z.enum(['up', 'down']) });

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
export const auditVerifyQueuedSchema = z.strictObject({ jobId: z.uuid() });
export const auditVerifySchema = z.union([
  z.strictObject({ state: z.literal('none') }),
  z.strictObject({
    jobId: z.uuid(),
    state: z.enum(['queued', 'running', 'done', 'failed']),
    ok: z.boolean().optional(),
    checked: z.number().int().describe('Rows found intact from the first row of the chain').optional(),
    firstBrokenId: z.string().describe('The first row whose link or hash does not hold').optional(),
    startedAt: z.iso.datetime().optional(),
    finishedAt: z.iso.datetime().optional(),
  }),
]);

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
