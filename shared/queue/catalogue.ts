import { z } from 'zod';

/** CONTRACT §6: the queue names operators recognise, and the typed payload of each queue's jobs. */
export const QUEUE_NAMES = ['bot-reply', 'embed', 'email-inbound', 'email-outbound', 'file-encrypt', 'audit'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

const uuid = z.uuid();

export const auditEventSchema = z.object({
  eventId: uuid,
  time: z.iso.datetime(),
  tenantId: uuid.nullable(),
  actor: z.string().max(200).nullable(),
  type: z.string().regex(/^[a-z]+(\.[a-z]+)+$/),
  target: z.string().max(500).nullable(),
  outcome: z.enum(['success', 'failure', 'denied']),
  ip: z.string().max(100).nullable(),
  requestId: z.string().max(100).nullable(),
  details: z.record(z.string(), z.unknown()),
});
export type AuditEventPayload = z.infer<typeof auditEventSchema>;

/**
 * The `audit` queue carries two kinds of job: events to append (any other job name: the event type) and, named
 * `verify`, a walk of the chain for the run `runId` (from the last checkpoint, or from the first row when `full`).
 * Verification shares the audit family's worker and role rather than a queue of its own: it reads the same table
 * and its checkpoints are signed with the same key.
 */
export const AUDIT_VERIFY_JOB = 'verify';
export const auditVerifySchema = z.strictObject({ runId: uuid, full: z.boolean() });
export type AuditVerifyPayload = z.infer<typeof auditVerifySchema>;

/**
 * Named `batch`, several events recorded at once by one process (see AuditRecorder): one job for them all, so a busy
 * API adds one job per batch, not per event. The name cannot be an event type (those have a dot).
 */
export const AUDIT_BATCH_JOB = 'batch';
export const AUDIT_BATCH_MAX = 100;
export const auditBatchSchema = z.strictObject({ events: z.array(auditEventSchema).min(1).max(AUDIT_BATCH_MAX) });
export type AuditBatchPayload = z.infer<typeof auditBatchSchema>;

type AuditJobPayload = AuditEventPayload | AuditVerifyPayload | AuditBatchPayload;

function auditSchemaOf(value: unknown): z.ZodType<AuditJobPayload> {
  if (typeof value !== 'object' || value === null) return auditEventSchema;
  if ('runId' in value) return auditVerifySchema;
  return 'events' in value ? auditBatchSchema : auditEventSchema;
}

/** An audit job's payload: checked against the one schema its shape calls for, so a refusal names the field. */
const auditJobSchema = z.unknown().transform((value, context): AuditJobPayload => {
  const schema = auditSchemaOf(value);
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) context.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});

/** Which kind of audit job a decrypted payload is; the job name decides, and the payload must fit it. */
export function auditJobOf(
  jobName: string,
  data: AuditJobPayload,
): { kind: 'verify'; data: AuditVerifyPayload } | { kind: 'batch'; data: AuditBatchPayload } | { kind: 'event'; data: AuditEventPayload } | undefined {
  if (jobName === AUDIT_VERIFY_JOB) return 'runId' in data ? { kind: 'verify', data } : undefined;
  if (jobName === AUDIT_BATCH_JOB) return 'events' in data ? { kind: 'batch', data } : undefined;
  return 'eventId' in data ? { kind: 'event', data } : undefined;
}

export const jobSchemas = {
  /** `botId`: the conversation's bot when the producer knows it, so the reply worker can tell whether its copy of the bot is current. */
  'bot-reply': z.object({ tenantId: uuid, conversationId: uuid, messageId: uuid, botId: uuid.optional() }),
  embed: z.object({ tenantId: uuid, documentId: uuid }),
  'email-inbound': z.object({ tenantId: uuid, botId: uuid, uidValidity: z.number().int().nonnegative(), uid: z.number().int().positive() }),
  'email-outbound': z.object({ tenantId: uuid, conversationId: uuid, replyToMessageId: uuid, botMessageId: uuid }),
  'file-encrypt': z.object({ tenantId: uuid, fileId: uuid }),
  audit: auditJobSchema,
} satisfies Record<QueueName, z.ZodType>;

export type JobData<Q extends QueueName> = z.infer<(typeof jobSchemas)[Q]>;

/** The associated data binding an envelope to one queue and job name, so a payload cannot be replayed elsewhere. */
export function jobAad(queue: QueueName, jobName: string): string {
  return `queue:${queue}:job:${jobName}`;
}
