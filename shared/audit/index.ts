export { AUDIT_EVENT_TYPES, type AuditEventType, type AuditOutcome, type AuditEventInput } from './types.js';
export { appendAuditEvent, appendAuditEvents, verifyAuditChain, chainHash, pseudonym, isPseudonym, GENESIS_HASH, ERASURE_EVENT_TYPE, type ChainKeys, type AuditRow, type VerifyResult } from './chain.js';
export { AuditRecorder, type AuditRecorderOptions } from './recorder.js';
