import { UnrecoverableError, type Job } from 'bullmq';
import { createStorage, type ObjectStorage } from '../adapters/storage/index.js';
import { withTenant } from '../shared/db/index.js';
import { FileIntegrityError, FileStaging, findFile, OpenedContent, type FileRow } from '../shared/files/index.js';
import type { Kernel } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import type { JobData } from '../shared/queue/index.js';

/** A staged file that never became a job (its writer died between staging and enqueueing) is swept after this. */
const ORPHAN_AGE_MS = 5 * 60_000;
/** An upload the API stopped writing this long ago belongs to a dead request. */
const ABANDONED_PART_AGE_MS = 15 * 60_000;
const SWEEP_INTERVAL_MS = 5 * 60_000;

type Step = { kind: 'gone' } | { kind: 'done'; status: 'stored' | 'failed' } | { kind: 'store'; row: FileRow };

function isLastAttempt(job: Job, error: unknown): boolean {
  if (error instanceof UnrecoverableError) return true;
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

async function nextStep(kernel: Kernel, data: JobData<'file-encrypt'>): Promise<Step> {
  return withTenant(kernel.db, data.tenantId, async (trx) => {
    const row = await findFile(trx, data.fileId);
    if (row === undefined) return { kind: 'gone' };
    if (row.status !== 'pending') return { kind: 'done', status: row.status };
    return { kind: 'store', row };
  });
}

/**
 * The staged file is already the encrypted object (its writer sealed it under the file's own data key as it
 * arrived). Before storing it, its header must open under the file's wrapped key and its size must be exactly what
 * the recorded plaintext size gives: a staged file that was cut, swapped or written under another key never
 * reaches storage. Then the file is stored as it is: memory holds the upload's part buffers, whatever the size.
 */
async function storeStaged(kernel: Kernel, storage: ObjectStorage, staging: FileStaging, row: FileRow): Promise<void> {
  try {
    const staged = await OpenedContent.open(kernel.keys.payloadRing, row, {
      read: (range) => Promise.resolve(staging.reader(row.tenant_id, row.id, range)),
      size: () => staging.stagedSize(row.tenant_id, row.id),
    });
    staged.close();
  } catch (error) {
    if (error instanceof FileIntegrityError) {
      if ((await staging.stagedSize(row.tenant_id, row.id)) === undefined) throw new UnrecoverableError('staged file is missing');
      throw new UnrecoverableError(`staged file does not authenticate (${error.message})`);
    }
    throw error;
  }
  const stagedSize = await staging.stagedSize(row.tenant_id, row.id);
  if (stagedSize === undefined) throw new UnrecoverableError('staged file is missing');
  // Verified above: the staged size is exactly the size the recorded plaintext size gives.
  await storage.putFile(row.storage_key, staging.path(row.tenant_id, row.id, 'staged'), stagedSize);
}

export async function encryptFile(kernel: Kernel, storage: ObjectStorage, staging: FileStaging, data: JobData<'file-encrypt'>): Promise<void> {
  const step = await nextStep(kernel, data);
  if (step.kind !== 'store') {
    await staging.remove(data.tenantId, data.fileId);
    return;
  }
  await storeStaged(kernel, storage, staging, step.row);
  const updated = await withTenant(kernel.db, data.tenantId, (trx) =>
    trx('files').where({ id: data.fileId, status: 'pending' }).update({ status: 'stored', failure_reason: null, updated_at: trx.fn.now() }),
  );
  // Deleted while it was being stored: the object written just now belongs to no one.
  if (updated === 0 && (await withTenant(kernel.db, data.tenantId, (trx) => findFile(trx, data.fileId))) === undefined) await storage.delete(step.row.storage_key);
  await staging.remove(data.tenantId, data.fileId);
}

/**
 * The staged copy goes first, so a file seen `failed` has nothing left in staging; a crash in between leaves the
 * row pending, and the job's retry finds the staged file missing and ends here again.
 */
async function markFailed(kernel: Kernel, staging: FileStaging, data: JobData<'file-encrypt'>, reason: string): Promise<void> {
  await staging.remove(data.tenantId, data.fileId);
  await withTenant(kernel.db, data.tenantId, (trx) =>
    trx('files').where({ id: data.fileId, status: 'pending' }).update({ status: 'failed', failure_reason: reason.slice(0, 200), updated_at: trx.fn.now() }),
  );
}

/**
 * Nothing is left behind by a crash: staged files whose row is finished or gone are removed, staged files still
 * pending get their job again (same job id, so never twice), and uploads abandoned by a dead API are removed.
 */
export async function sweepStaging(kernel: Kernel, staging: FileStaging, now = Date.now()): Promise<void> {
  for (const entry of await staging.list()) {
    if (entry.kind === 'part') {
      if (now - entry.modifiedMs > ABANDONED_PART_AGE_MS) await staging.remove(entry.tenantId, entry.fileId);
      continue;
    }
    const row = await withTenant(kernel.db, entry.tenantId, (trx) => findFile(trx, entry.fileId));
    if (row === undefined) {
      if (now - entry.modifiedMs > ORPHAN_AGE_MS) await staging.remove(entry.tenantId, entry.fileId);
    } else if (row.status !== 'pending') {
      await staging.remove(entry.tenantId, entry.fileId);
    } else {
      const job = await kernel.queues.queue('file-encrypt').getJob(entry.fileId);
      if (job === undefined) await kernel.queues.enqueue('file-encrypt', 'encrypt', { tenantId: entry.tenantId, fileId: entry.fileId }, { jobId: entry.fileId });
      else if (await job.isFailed()) await job.retry();
    }
  }
}

export function startFilesWorker(kernel: Kernel): void {
  const storage = createStorage(kernel.config);
  const staging = new FileStaging(kernel.config.dataDir);
  const ready = storage.ensureReady();
  const sweep = (): void => {
    sweepStaging(kernel, staging).catch((error: unknown) => log.warn('staging sweep failed', { error: error instanceof Error ? error.message : String(error) }));
  };
  ready.then(sweep, (error: unknown) => log.error('file storage is not ready', { backend: storage.kind, error: error instanceof Error ? error.message : String(error) }));
  const timer = setInterval(sweep, SWEEP_INTERVAL_MS);
  timer.unref();
  kernel.queues.worker(
    'file-encrypt',
    async (data, job) => {
      await ready;
      try {
        await encryptFile(kernel, storage, staging, data);
      } catch (error) {
        const final = isLastAttempt(job, error);
        const reason = error instanceof UnrecoverableError ? error.message : 'storage_error';
        log.warn('file encryption failed', { jobId: job.id, attempt: job.attemptsMade + 1, final, error: error instanceof Error ? error.message : String(error) });
        if (final) await markFailed(kernel, staging, data, reason);
        throw error;
      }
    },
    // A killed worker's file goes back to the queue once its lock expires; it may stall twice before it fails.
    { concurrency: 4, maxStalledCount: 2 },
  );
  kernel.onClose(async () => {
    clearInterval(timer);
    await storage.close();
  });
}
