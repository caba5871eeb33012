export { QUEUE_NAMES, jobSchemas, jobAad, auditEventSchema, auditVerifySchema, auditJobOf, AUDIT_VERIFY_JOB, AUDIT_BATCH_JOB, AUDIT_BATCH_MAX, auditBatchSchema, type AuditBatchPayload, type QueueName, type JobData, type AuditEventPayload, type AuditVerifyPayload } from './catalogue.js';
export { QueueFactory, DEFAULT_JOB_OPTIONS, type Processor, type QueueFactoryOptions } from './factory.js';
