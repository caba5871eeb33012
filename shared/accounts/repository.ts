import type { Knex } from 'knex';
import { openString } from '../crypto/index.js';
import { withTenant } from '../db/index.js';
import { emailAad, emailIndexCandidates, type AccountKeys, type Role } from './create.js';

export interface UserRow {
  id: string;
  tenant_id: string;
  email_ciphertext: string;
  email_index: string;
  password_hash: string | null;
  must_change_password: boolean;
  totp_secret_ciphertext: string | null;
  mfa_enabled: boolean;
  mfa_recovery_codes: string[];
  oidc_issuer: string | null;
  oidc_subject: string | null;
  disabled: boolean;
  erased_at: Date | null;
}

export async function findUserByEmailIndex(db: Knex, emailIndex: string): Promise<UserRow | undefined> {
  return db('users').where({ email_index: emailIndex }).first<UserRow | undefined>();
}

/**
 * The account with this e-mail address, looked up under the current blind-index key and every previous one; an
 * account found under a previous key is re-indexed under the current one, so a rotation of DATABASE_ENCRYPTION_KEY
 * moves accounts over as they are used.
 */
export async function findUserByEmail(db: Knex, keys: AccountKeys, email: string): Promise<UserRow | undefined> {
  const candidates = emailIndexCandidates(keys, email);
  const [current] = candidates;
  if (current === undefined) return undefined;
  if (candidates.length === 1) return findUserByEmailIndex(db, current);
  const user = await db('users').whereIn('email_index', candidates).orderByRaw('email_index = ? desc', [current]).first<UserRow | undefined>();
  if (user === undefined || user.email_index === current) return user;
  const moved: Array<{ id: string }> = await db('users').where({ id: user.id, email_index: user.email_index }).update({ email_index: current }, ['id']);
  return moved.length === 0 ? user : { ...user, email_index: current };
}

export async function findUserById(db: Knex, id: string): Promise<UserRow | undefined> {
  return db('users').where({ id }).first<UserRow | undefined>();
}

export async function rolesOf(db: Knex, userId: string, tenantId: string): Promise<Role[]> {
  const rows = await withTenant(db, tenantId, (trx) => trx('memberships').where({ user_id: userId }).select<Array<{ role: Role }>>('role'));
  return rows.map((row) => row.role).sort();
}

export function decryptEmail(keys: AccountKeys, user: Pick<UserRow, 'id' | 'email_ciphertext'>): string {
  return openString(keys.columnRing, user.email_ciphertext, emailAad(user.id));
}

export async function setPassword(db: Knex, userId: string, passwordHash: string): Promise<void> {
  await db('users').where({ id: userId }).update({ password_hash: passwordHash, must_change_password: false, updated_at: db.fn.now() });
}
