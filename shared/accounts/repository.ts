import type { Knex } from 'knex';
import { openString } from '../crypto/index.js';
import { withTenant } from '../db/index.js';
import { emailAad, type AccountKeys, type Role } from './create.js';

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
