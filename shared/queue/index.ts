export { QUEUE_NAMES, jobSchemas, jobAad, auditEventSchema, auditVerifySchema, auditJobOf, AUDIT_VERIFY_JOB, type QueueName, type JobData, type AuditEventPayload, type AuditVerifyPayload } from './catalogue.js';
export { QueueFactory, DEFAULT_JOB_OPTIONS, type Processor, type QueueFactoryOptions } from './factory.js';
