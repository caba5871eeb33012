import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { UnrecoverableError, type Job } from 'bullmq';
import { createStorage, type ObjectStorage } from '../adapters/storage/index.js';
import { createEncryptStream, type KeyRing } from '../shared/crypto/index.js';
import { DEFAULT_CHUNK_SIZE } from '../shared/crypto/stream-format.js';
import { withTenant } from '../shared/db/index.js';
import { contentAad, dataKeyRing, FileStaging, findFile, newDataKey, wrapDataKey, type FileRow } from '../shared/files/index.js';
import type { Kernel } from '../shared/kernel.js';
import { log } from '../shared/log/index.js';
import type { JobData } from '../shared/queue/index.js';

/** A staged file that never became a job (the API died between staging and enqueueing) is swept after this. */
const ORPHAN_AGE_MS = 5 * 60_000;
/** An upload the API stopped writing this long ago belongs to a dead request. */
const ABANDONED_PART_AGE_MS = 15 * 60_000;
const SWEEP_INTERVAL_MS = 5 * 60_000;

type Step =
  | { kind: 'gone' }
  | { kind: 'done'; status: 'stored' | 'failed' }
  | { kind: 'encrypt'; row: FileRow; wrappedKey: string };

function isLastAttempt(job: Job, error: unknown): boolean {
  if (error instanceof UnrecoverableError) return true;
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

/** Counts and hashes the plaintext as it passes. */
function measure(): Transform & { bytes: () => number; digest: () => string } {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      bytes += chunk.length;
      callback(null, chunk);
    },
  });
  return Object.assign(tap, { bytes: () => bytes, digest: () => hash.digest('hex') });
}

/** What the job has left to do; a retried job reuses the data key it recorded on its first try. */
async function nextStep(kernel: Kernel, data: JobData<'file-encrypt'>): Promise<Step> {
  return withTenant(kernel.db, data.tenantId, async (trx) => {
    const row = await findFile(trx, data.fileId);
    if (row === undefined) return { kind: 'gone' };
    if (row.status !== 'pending') return { kind: 'done', status: row.status };
    if (row.wrapped_key !== null) return { kind: 'encrypt', row, wrappedKey: row.wrapped_key };
    const wrappedKey = wrapDataKey(kernel.keys.payloadRing, row.id, newDataKey());
    await trx('files').where({ id: row.id }).update({ wrapped_key: wrappedKey, chunk_size: DEFAULT_CHUNK_SIZE, updated_at: trx.fn.now() });
    return { kind: 'encrypt', row: { ...row, wrapped_key: wrappedKey, chunk_size: DEFAULT_CHUNK_SIZE }, wrappedKey };
  });
}

/**
 * Staged plaintext (itself sealed under the staging key) → the file's own data key, in fixed-size records bound to
 * the file id → the object store, streamed: memory holds a few records and the upload's parts, whatever the size.
 */
async function encryptToStorage(kernel: Kernel, storage: ObjectStorage, staging: FileStaging, row: FileRow, ring: KeyRing): Promise<{ sha256: string }> {
  const tap = measure();
  const source = staging.reader(kernel.keys.payloadRing, row.tenant_id, row.id);
  const encrypt = createEncryptStream(ring, contentAad(row.id), { chunkSize: row.chunk_size ?? DEFAULT_CHUNK_SIZE });
  source.on('error', (error) => tap.destroy(error));
  tap.on('error', (error) => encrypt.destroy(error));
  await storage.put(row.storage_key, source.pipe(tap).pipe(encrypt));
  if (tap.bytes() !== Number(row.size)) throw new UnrecoverableError('staged file does not have the recorded size');
  return { sha256: tap.digest() };
}

export async function encryptFile(kernel: Kernel, storage: ObjectStorage, staging: FileStaging, data: JobData<'file-encrypt'>): Promise<void> {
  const step = await nextStep(kernel, data);
  if (step.kind !== 'encrypt') {
    await staging.remove(data.tenantId, data.fileId);
    return;
  }
  const ring = dataKeyRing(kernel.keys.payloadRing, step.row.id, step.wrappedKey);
  let sha256: string;
  try {
    ({ sha256 } = await encryptToStorage(kernel, storage, staging, step.row, ring));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new UnrecoverableError('staged file is missing');
    throw error;
  } finally {
    ring.zeroize();
  }
  const updated = await withTenant(kernel.db, data.tenantId, (trx) =>
    trx('files').where({ id: data.fileId, status: 'pending' }).update({ status: 'stored', sha256, failure_reason: null, updated_at: trx.fn.now() }),
  );
  // Deleted while it was being encrypted: the object written just now belongs to no one.
  if (updated === 0 && (await withTenant(kernel.db, data.tenantId, (trx) => findFile(trx, data.fileId))) === undefined) await storage.delete(step.row.storage_key);
  await staging.remove(data.tenantId, data.fileId);
}

async function markFailed(kernel: Kernel, staging: FileStaging, data: JobData<'file-encrypt'>, reason: string): Promise<void> {
  await withTenant(kernel.db, data.tenantId, (trx) =>
    trx('files').where({ id: data.fileId, status: 'pending' }).update({ status: 'failed', failure_reason: reason.slice(0, 200), updated_at: trx.fn.now() }),
  );
  await staging.remove(data.tenantId, data.fileId);
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
    { concurrency: 4, lockDuration: kernel.config.jobLockMs, stalledInterval: kernel.config.jobLockMs, maxStalledCount: 2 },
  );
  kernel.onClose(async () => {
    clearInterval(timer);
    await storage.close();
  });
}
