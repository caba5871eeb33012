import { UnrecoverableError } from 'bullmq';
import { failRun } from '../shared/audit/index.js';
import type { Kernel } from '../shared/kernel.js';
import { auditJobOf } from '../shared/queue/index.js';
import { AuditBatcher } from './auditBatcher.js';
import { runAuditVerification } from './auditVerify.js';

/** Jobs held at once; their events are appended together (one lock, one INSERT per batch). */
const AUDIT_CONCURRENCY = 200;

/**
 * The audit family: appends events to the hash chain as the audit role (INSERT only), and runs the `verify` jobs
 * of the audit queue. The advisory lock in appendAuditEvents keeps the chain linear across any number of audit
 * worker processes.
 */
export function startAuditWorker(kernel: Kernel): void {
  const keyring = kernel.keys.auditKeys;
  const batcher = new AuditBatcher(kernel.db, keyring, AUDIT_CONCURRENCY);
  // A crashed worker's jobs run again once their lock expires and a stalled-job check sees them (idempotent by event id).
  kernel.queues.worker(
    'audit',
    async (data, job) => {
      const audit = auditJobOf(job.name, data);
      if (audit === undefined) throw new UnrecoverableError(`audit job ${job.id ?? '?'} does not fit its name`);
      if (audit.kind === 'event') return batcher.append(audit.data);
      if (audit.kind === 'batch') return Promise.all(audit.data.events.map((event) => batcher.append(event)));
      try {
        return await runAuditVerification(kernel.db, keyring, audit.data);
      } catch (error) {
        // The run is failed once BullMQ gives up on it; until then a retry resumes from the last checkpoint.
        if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) await failRun(kernel.db, audit.data.runId);
        throw error;
      }
    },
    { concurrency: AUDIT_CONCURRENCY },
  );
}
