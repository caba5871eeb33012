import type { Knex } from 'knex';
import { isUuid, withTenant } from '../../shared/db/index.js';
import { NotFoundError } from '../../shared/errors.js';
import { findFile, type FileRow } from '../../shared/files/index.js';
import type { Caller, RequestAuth } from '../auth/authenticate.js';
import type { ApiContext } from '../context.js';

const isStaff = (auth: RequestAuth): boolean => auth.roles.includes('operator') || auth.roles.includes('admin');

/** A file attached to a message of a conversation the user takes part in (or, for staff, any in the tenant). */
async function reachedThroughConversation(trx: Knex.Transaction, auth: RequestAuth, fileId: string): Promise<boolean> {
  const query = trx('message_attachments as a')
    .join('messages as m', 'm.id', 'a.message_id')
    .join('conversations as c', 'c.id', 'm.conversation_id')
    .where('a.file_id', fileId);
  if (!isStaff(auth)) query.where('c.user_id', auth.userId);
  return (await query.first('a.file_id')) !== undefined;
}

/**
 * Runs `fn` in the caller's tenant with the file, when the caller may reach it: its owner, or anyone who may read a
 * conversation it is attached to (its participant; an operator or admin of the tenant). Guests never reach files.
 * Everyone else gets 404, so a file's existence does not leak across owners or tenants.
 */
export async function withFile<T>(ctx: ApiContext, caller: Caller, fileId: unknown, fn: (trx: Knex.Transaction, file: FileRow) => Promise<T>): Promise<T> {
  if (caller.kind !== 'user' || !isUuid(fileId)) throw new NotFoundError('No such file');
  const { auth } = caller;
  return withTenant(ctx.kernel.db, auth.tenantId, async (trx) => {
    const file = await findFile(trx, fileId);
    if (file === undefined) throw new NotFoundError('No such file');
    if (file.owner_id !== auth.userId && !(await reachedThroughConversation(trx, auth, file.id))) throw new NotFoundError('No such file');
    return fn(trx, file);
  });
}
