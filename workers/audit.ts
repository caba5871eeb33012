import type { Kernel } from '../shared/kernel.js';
import { AuditBatcher } from './auditBatcher.js';

/** Jobs held at once; their events are appended together (one lock, one INSERT per batch). */
const AUDIT_CONCURRENCY = 200;

/**
 * The audit family: appends events to the hash chain as the audit role (INSERT only). The advisory lock in
 * appendAuditEvents keeps the chain linear across any number of audit worker processes.
 */
export function startAuditWorker(kernel: Kernel): void {
  const batcher = new AuditBatcher(kernel.db, { chainKey: kernel.keys.auditChainKey, pseudonymKey: kernel.keys.pseudonymKey }, AUDIT_CONCURRENCY);
  // A crashed worker's jobs run again once their lock expires and a stalled-job check sees them (idempotent by event id).
  kernel.queues.worker('audit', (event) => batcher.append(event), { concurrency: AUDIT_CONCURRENCY, lockDuration: kernel.config.jobLockMs, stalledInterval: kernel.config.jobLockMs });
}
