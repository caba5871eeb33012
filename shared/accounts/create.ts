import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { z } from 'zod';
import { blindIndex, normaliseEmail, sealString, type KeyRing } from '../crypto/index.js';
import { withTenant } from '../db/index.js';
import { ConflictError, ValidationError } from '../errors.js';
import { generateOneTimePassword, hashPassword } from './password.js';

export const ROLES = ['admin', 'operator', 'user'] as const;
export type Role = (typeof ROLES)[number];

export const newAccountSchema = z.strictObject({
  email: z.email({ message: 'must be an e-mail address' }).max(254),
  role: z.enum(ROLES, { message: 'must be admin, operator or user' }),
  tenant: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and dashes')
    .default('default'),
});
export type NewAccount = z.input<typeof newAccountSchema>;

export interface CreatedAccount {
  id: string;
  email: string;
  tenant: string;
  tenantId: string;
  role: Role;
  /** One-time password; the account must change it at first login. Shown once, never stored in clear. */
  password: string;
}

export interface AccountKeys {
  columnRing: KeyRing;
  blindIndexKey: Buffer;
  /** Earlier DATABASE_ENCRYPTION_KEYs: accounts indexed under them are still found (and re-indexed). */
  previousBlindIndexKeys?: readonly Buffer[];
}

export function emailIndex(keys: AccountKeys, email: string): string {
  return blindIndex(keys.blindIndexKey, 'user-email', normaliseEmail(email));
}

/** The address's index under the current key first, then under every previous one. */
export function emailIndexCandidates(keys: AccountKeys, email: string): string[] {
  const normalised = normaliseEmail(email);
  return [keys.blindIndexKey, ...(keys.previousBlindIndexKeys ?? [])].map((key) => blindIndex(key, 'user-email', normalised));
}

export function emailAad(userId: string): string {
  return `users.email:${userId}`;
}

/** Creates a local account (and its tenant when new) with a one-time password. */
export async function createAccount(db: Knex, keys: AccountKeys, input: NewAccount): Promise<CreatedAccount> {
  const parsed = newAccountSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ValidationError(`${issue?.path.join('.') ?? 'input'} ${issue?.message ?? 'is invalid'}`, issue?.path.join('.'));
  }
  const { email, role, tenant } = parsed.data;
  const password = generateOneTimePassword();
  const passwordHash = await hashPassword(password);
  const index = emailIndex(keys, email);

  // An account indexed under an earlier key has the address too (the unique index only sees equal indexes).
  const [, ...earlier] = emailIndexCandidates(keys, email);
  if (earlier.length > 0 && (await db('users').whereIn('email_index', earlier).first('id')) !== undefined) {
    throw new ConflictError('email_taken', 'An account with this e-mail address exists');
  }
  const tenantId = await findOrCreateTenant(db, tenant);
  const id = randomUUID();
  const inserted = await withTenant(db, tenantId, async (trx) => {
    const rows = await trx('users')
      .insert({
        id,
        tenant_id: tenantId,
        email_ciphertext: sealString(keys.columnRing, normaliseEmail(email), emailAad(id)),
        email_index: index,
        password_hash: passwordHash,
        must_change_password: true,
      })
      .onConflict('email_index')
      .ignore()
      .returning<Array<{ id: string }>>('id');
    if (rows.length === 0) return false;
    await trx('memberships').insert({ user_id: id, tenant_id: tenantId, role });
    return true;
  });
  if (!inserted) throw new ConflictError('email_taken', 'An account with this e-mail address exists');
  return { id, email: normaliseEmail(email), tenant, tenantId, role, password };
}

export async function findOrCreateTenant(db: Knex, name: string): Promise<string> {
  await db('tenants').insert({ name }).onConflict('name').ignore();
  const tenant = await db('tenants').where({ name }).first<{ id: string } | undefined>('id');
  if (tenant === undefined) throw new Error(`tenant ${name} could not be created`);
  return tenant.id;
}
