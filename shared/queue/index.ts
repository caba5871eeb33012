export { QUEUE_NAMES, jobSchemas, jobAad, auditEventSchema, type QueueName, type JobData, type AuditEventPayload } from './catalogue.js';
export { QueueFactory, DEFAULT_JOB_OPTIONS, type Processor, type QueueFactoryOptions } from './factory.js';
