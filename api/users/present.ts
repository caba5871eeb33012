import type { Knex } from 'knex';
import { decryptEmail, type AccountKeys, type Role } from '../../shared/accounts/index.js';

/** An account as its tenant's admins see it in the console. */
export interface UserView {
  id: string;
  email: string;
  role: Role;
  mfa: boolean;
  disabled: boolean;
  mustChangePassword: boolean;
  createdAt: string;
}

interface UserListRow {
  id: string;
  email_ciphertext: string;
  mfa_enabled: boolean;
  disabled: boolean;
  must_change_password: boolean;
  created_at: Date;
  roles: Role[] | null;
}

const RANK: readonly Role[] = ['admin', 'operator', 'user'];

/** The strongest of an account's roles in its tenant (an account without one counts as a user). */
function strongest(roles: readonly Role[] | null): Role {
  return RANK.find((role) => roles?.includes(role) === true) ?? 'user';
}

/** The tenant's live accounts (not erased), oldest first, or only `id`. Call inside a tenant-scoped transaction. */
export async function listUserViews(trx: Knex.Transaction, keys: AccountKeys, tenantId: string, id?: string): Promise<UserView[]> {
  const query = trx('users as u')
    .leftJoin('memberships as m', function joinMemberships() {
      this.on('m.user_id', '=', 'u.id').andOn('m.tenant_id', '=', 'u.tenant_id');
    })
    .where('u.tenant_id', tenantId)
    .whereNull('u.erased_at')
    .groupBy('u.id')
    .orderBy([{ column: 'u.created_at' }, { column: 'u.id' }])
    .select<UserListRow[]>('u.id', 'u.email_ciphertext', 'u.mfa_enabled', 'u.disabled', 'u.must_change_password', 'u.created_at', trx.raw('array_remove(array_agg(m.role), NULL) as roles'));
  if (id !== undefined) query.where('u.id', id);
  const rows = await query;
  return rows.map((row) => ({
    id: row.id,
    email: decryptEmail(keys, row),
    role: strongest(row.roles),
    mfa: row.mfa_enabled,
    disabled: row.disabled,
    mustChangePassword: row.must_change_password,
    createdAt: row.created_at.toISOString(),
  }));
}
