export { AUDIT_EVENT_TYPES, type AuditEventType, type AuditOutcome, type AuditEventInput } from './types.js';
export { appendAuditEvent, appendAuditEvents, chainHash, pseudonym, isPseudonym, rowToEvent, GENESIS_HASH, ERASURE_EVENT_TYPE, type AuditRow } from './chain.js';
export { auditKid, toAuditKeyring, type ChainKeys, type AuditKeySet, type AuditKeyring, type ChainKeySource } from './keys.js';
export { verifyAuditChain, walkChain, GENESIS_POSITION, type VerifyResult, type ChainPosition } from './verify.js';
export { latestCheckpoint, saveCheckpoint, type LoadedCheckpoint } from './checkpoints.js';
export { createRun, failRun, finishRun, latestRun, openRun, startRun, type VerifyRunState, type VerifyRunView } from './verifyRuns.js';
export { AuditRecorder, type AuditRecorderOptions } from './recorder.js';
