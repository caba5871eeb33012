import type { Knex } from 'knex';
import {
  finishRun,
  GENESIS_POSITION,
  latestCheckpoint,
  saveCheckpoint,
  startRun,
  walkChain,
  type AuditKeyring,
  type ChainPosition,
  type VerifyResult,
} from '../shared/audit/index.js';
import { log } from '../shared/log/index.js';
import type { AuditVerifyPayload } from '../shared/queue/index.js';

/** A checkpoint is stored at least every this many rows of a walk, so a worker crash resumes near where it was. */
const CHECKPOINT_EVERY_ROWS = 50_000;

/**
 * Where a walk starts: the newest checkpoint that authenticates, once the row it vouches for is found unchanged
 * (a missing or changed row there is reported as the first broken one); else the first row of the chain.
 */
async function startingPoint(db: Knex, keyring: AuditKeyring, full: boolean): Promise<{ from: ChainPosition } | { broken: VerifyResult }> {
  if (full) return { from: GENESIS_POSITION };
  const checkpoint = await latestCheckpoint(db, keyring);
  if (checkpoint.status === 'unverifiable') log.warn('audit verify: the newest checkpoint does not authenticate; walking from the first row');
  if (checkpoint.status !== 'valid') return { from: GENESIS_POSITION };
  const { position } = checkpoint;
  const row = await db('audit_events').where({ id: position.lastId }).first<{ hash: string } | undefined>('hash');
  if (row?.hash !== position.lastHash) return { broken: { ok: false, checked: Math.max(0, position.checked - 1), firstBrokenId: position.lastId } };
  return { from: position };
}

/**
 * The `verify` job of the audit queue: walks the chain in pages from the last verified checkpoint (or from the
 * first row for a full run), stores checkpoints as it goes while the chain holds, and records the run's result.
 * It runs in the audit worker process, never in the API.
 */
export async function runAuditVerification(db: Knex, keyring: AuditKeyring, job: AuditVerifyPayload): Promise<VerifyResult | undefined> {
  if (!(await startRun(db, job.runId))) return undefined;
  const start = await startingPoint(db, keyring, job.full);
  let result: VerifyResult;
  if ('broken' in start) result = start.broken;
  else {
    let saved = start.from.checked;
    const walked = await walkChain(db, keyring, start.from, {
      onPage: async (position) => {
        if (position.checked - saved < CHECKPOINT_EVERY_ROWS) return;
        await saveCheckpoint(db, keyring, position);
        saved = position.checked;
      },
    });
    if (walked.position.checked > saved) await saveCheckpoint(db, keyring, walked.position);
    result = walked.ok ? { ok: true, checked: walked.checked } : { ok: false, checked: walked.checked, ...(walked.firstBrokenId === undefined ? {} : { firstBrokenId: walked.firstBrokenId }) };
  }
  await finishRun(db, job.runId, result);
  log.info('audit chain verified', { runId: job.runId, ok: result.ok, checked: result.checked, ...(result.firstBrokenId === undefined ? {} : { firstBrokenId: result.firstBrokenId }) });
  return result;
}
