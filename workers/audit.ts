import { appendAuditEvent } from '../shared/audit/index.js';
import type { Kernel } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';

/**
 * The audit family: appends each event to the hash chain as the audit role (INSERT only). Concurrency 1 keeps
 * the chain in arrival order within a process; the advisory lock in appendAuditEvent keeps it linear across
 * processes.
 */
export function startAuditWorker(kernel: Kernel): void {
  const keys = { chainKey: kernel.keys.auditChainKey, pseudonymKey: kernel.keys.pseudonymKey };
  kernel.queues.worker(
    'audit',
    async (event) => {
      const written = await appendAuditEvent(kernel.db, keys, event);
      if (!written) log.debug('audit event already in the chain', { eventId: event.eventId });
    },
    { concurrency: 1 },
  );
}
