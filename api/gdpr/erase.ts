import type { Knex } from 'knex';
import { chainHash, pseudonym, isPseudonym, rowToEvent, type AuditKeySet, type AuditRow } from '../../shared/audit/index.js';
import { withTenant } from '../../shared/db/index.js';
import { UnauthorizedError } from '../../shared/errors.js';
import { log } from '../../shared/log/index.js';
import type { RequestAuth } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';
import { requireKnowledge } from '../knowledge/service.js';
import { forgetUserLimits } from '../http/limits.js';

export interface ErasureRequest {
  auth: RequestAuth;
  ip: string | null;
  requestId: string | null;
}

export interface ErasureResult {
  /** The keyed pseudonym that stands for the erased user in the audit trail from now on. */
  subject: string;
  conversations: number;
  files: number;
  knowledge: number;
  auditRows: number;
}

interface DeletedFile {
  id: string;
  storage_key: string;
}

/**
 * Deletes the user's rows in one tenant-scoped transaction; messages go with their conversations (cascade). The
 * points of the knowledge documents they own leave Qdrant first, inside the transaction: when Qdrant does not
 * answer, nothing is deleted and the erasure answers 503, to be repeated.
 */
async function deleteRows(ctx: ApiContext, trx: Knex.Transaction, tenantId: string, userId: string): Promise<{ conversations: number; files: DeletedFile[]; knowledge: number }> {
  const conversations = await trx('conversations').where({ user_id: userId }).delete();
  const files = await trx('files').where({ owner_id: userId }).delete().returning<DeletedFile[]>(['id', 'storage_key']);
  const documents = await trx('knowledge_documents').where({ owner_id: userId }).select<Array<{ id: string; collection: string | null }>>('id', 'collection');
  const indexed = documents.filter((document) => document.collection !== null);
  if (indexed.length > 0) {
    const services = requireKnowledge(ctx.knowledge);
    for (const document of indexed) await services.index.deleteDocument(document.collection ?? '', tenantId, document.id);
  }
  const knowledge = await trx('knowledge_documents').where({ owner_id: userId }).delete();
  await trx('memberships').where({ user_id: userId }).delete();
  const users = await trx('users').where({ id: userId }).delete();
  if (users !== 1) throw new UnauthorizedError();
  return { conversations, files, knowledge };
}

/**
 * Removes the erased user's file contents: the staged copy (an upload still waiting for the files worker) and the
 * stored object, every version of it. Runs after the rows are gone, so the only wrapped copy of each data key is
 * already deleted: an object whose deletion fails cannot be decrypted any more, and is logged (by id, never by
 * name) for an operator to clean up. A file-encrypt job still running finds no row and deletes what it wrote.
 */
async function deleteFileContents(ctx: ApiContext, tenantId: string, files: readonly DeletedFile[]): Promise<number> {
  let failed = 0;
  for (const file of files) {
    const results = await Promise.allSettled([ctx.staging.remove(tenantId, file.id), ctx.storage.delete(file.storage_key)]);
    for (const result of results) {
      if (result.status === 'fulfilled') continue;
      failed += 1;
      log.error('erasure: file content could not be deleted', { fileId: file.id, error: result.reason instanceof Error ? result.reason.message : String(result.reason) });
    }
  }
  return failed;
}

type RowScope = (query: Knex.QueryBuilder) => Knex.QueryBuilder;

/** Replaces the user's id in the rows of `scope` by the pseudonyms of the key set those rows were hashed with. */
async function replaceIdentity(db: Knex, userId: string, set: AuditKeySet, scope: RowScope): Promise<number> {
  const subject = pseudonym(set.pseudonymKey, userId);
  const ips = await scope(db('audit_events').where({ actor: userId })).distinct<Array<{ ip: string | null }>>('ip');
  let changed = 0;
  for (const { ip } of ips) {
    const rows = scope(db('audit_events').where({ actor: userId }));
    if (ip === null) changed += await rows.whereNull('ip').update({ actor: subject });
    else changed += await rows.where({ ip }).update({ actor: subject, ip: isPseudonym(ip) ? ip : pseudonym(set.pseudonymKey, ip) });
  }
  changed += await scope(db('audit_events').where({ target: `user:${userId}` })).update({ target: `user:${subject}` });
  return changed;
}

/**
 * Replaces the user's id (as actor, with the IP of those rows, and as `user:<id>` target) by keyed pseudonyms in
 * audit_events. The chain hashes identities only as these pseudonyms, so every hash stays valid; migration 007 lets
 * exactly this UPDATE through. Each row gets the pseudonym of the key set it was hashed with (its `key_id`; for a
 * row from before key ids, the configured set whose hash holds), so rows from before a key rotation still verify.
 */
async function pseudonymiseAuditRows(ctx: ApiContext, userId: string): Promise<number> {
  const { db, keys } = ctx.kernel;
  const ring = keys.auditKeys;
  const mentions: RowScope = (query) => query.where((inner) => inner.where({ actor: userId }).orWhere({ target: `user:${userId}` }));
  let changed = 0;
  const kids = await mentions(db('audit_events')).whereNotNull('key_id').distinct<Array<{ key_id: string }>>('key_id');
  for (const { key_id: kid } of kids) changed += await replaceIdentity(db, userId, ring.find(kid) ?? ring.current, (query) => query.where({ key_id: kid }));
  const legacy = (await mentions(db('audit_events')).whereNull('key_id').orderBy('id')) as AuditRow[];
  for (const row of legacy) {
    const set = ring.all.find((candidate) => chainHash(candidate, row.prev_hash, rowToEvent(row)) === row.hash) ?? ring.current;
    changed += await replaceIdentity(db, userId, set, (query) => query.where({ id: row.id }));
  }
  return changed;
}

/**
 * GDPR erasure of the caller (art. 17): their conversations and messages, files, knowledge documents they own,
 * memberships and account are deleted; every session and refresh token, their login counters and rate budget
 * leave Redis; in the audit trail their identity becomes a keyed pseudonym, so the chain still verifies.
 *
 * The `data.erase` event is appended straight to the chain (not queued), between two pseudonymisation passes: an
 * event of the user still in the queue is either in the chain before that append (the second pass covers it) or
 * written after it, and then the audit writer sees the erasure and stores the pseudonym itself (appendAuditEvents).
 */
export async function eraseUser(ctx: ApiContext, request: ErasureRequest): Promise<ErasureResult> {
  const { kernel } = ctx;
  const { auth } = request;
  const user = await kernel.db('users').where({ id: auth.userId }).first<{ id: string; tenant_id: string; email_index: string } | undefined>('id', 'tenant_id', 'email_index');
  if (user === undefined) throw new UnauthorizedError();
  const subject = pseudonym(kernel.keys.pseudonymKey, user.id);

  const deleted = await withTenant(kernel.db, user.tenant_id, (trx) => deleteRows(ctx, trx, user.tenant_id, user.id));
  const fileFailures = await deleteFileContents(ctx, user.tenant_id, deleted.files);
  if (deleted.files.length > 0) log.info('erasure: files deleted', { files: deleted.files.length, failures: fileFailures });

  await ctx.sessions.forgetUser(user.id);
  await ctx.loginGuard.reset(user.email_index);
  await forgetUserLimits(ctx, user.id);

  let auditRows = await pseudonymiseAuditRows(ctx, user.id);
  await kernel.audit.recordNow({
    type: 'data.erase',
    outcome: 'success',
    tenantId: user.tenant_id,
    actor: subject,
    target: subject,
    ip: request.ip === null ? null : pseudonym(kernel.keys.pseudonymKey, request.ip),
    requestId: request.requestId,
    details: { subject, scope: 'self', conversations: deleted.conversations, files: deleted.files.length, knowledge: deleted.knowledge },
  });
  auditRows += await pseudonymiseAuditRows(ctx, user.id);
  return { subject, conversations: deleted.conversations, files: deleted.files.length, knowledge: deleted.knowledge, auditRows };
}
