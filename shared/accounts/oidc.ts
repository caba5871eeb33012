import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { normaliseEmail, sealString } from '../crypto/index.js';
import { withTenant } from '../db/index.js';
import { emailAad, emailIndex, findOrCreateTenant, ROLES, type AccountKeys, type Role } from './create.js';
import { findUserByEmail, type UserRow } from './repository.js';

/** What an identity provider vouched for in a verified ID token (and its userinfo). */
export interface OidcIdentity {
  /** The issuer identifier the ID token was validated against. */
  issuer: string;
  subject: string;
  email: string | undefined;
  /** The provider's `email_verified` claim; undefined when it sent none (or not a boolean). */
  emailVerified: boolean | undefined;
  /** Our roles granted by the provider; an empty list means the plain `user` role. */
  roles: readonly Role[];
}

export type OidcLinkFailure = 'email_missing' | 'email_not_verified' | 'email_conflict' | 'account_disabled';

export type OidcLinkResult =
  | { ok: true; user: UserRow; created: boolean; linked: boolean; roles: Role[]; previousRoles: Role[] }
  | { ok: false; reason: OidcLinkFailure; user: UserRow | undefined };

export const OIDC_DEFAULT_TENANT = 'default';

/** Our roles among the provider's role names: unknown ones are ignored, none at all means `user`. */
export function effectiveOidcRoles(names: Iterable<string>): Role[] {
  const wanted = new Set(names);
  const roles = ROLES.filter((role) => wanted.has(role));
  return roles.length === 0 ? ['user'] : [...roles];
}

async function findByIdentity(db: Knex, issuer: string, subject: string): Promise<UserRow | undefined> {
  return db('users').where({ oidc_issuer: issuer, oidc_subject: subject }).first<UserRow | undefined>();
}

/**
 * Replaces the user's memberships in the tenant with exactly `roles` (so a role removed at the provider is gone).
 * Returns the roles held before, sorted.
 */
export async function replaceMemberships(db: Knex, userId: string, tenantId: string, roles: readonly Role[]): Promise<Role[]> {
  return withTenant(db, tenantId, async (trx) => {
    const previous = await trx('memberships').where({ user_id: userId }).pluck<Role[]>('role');
    await trx('memberships').where({ user_id: userId }).delete();
    if (roles.length > 0) await trx('memberships').insert(roles.map((role) => ({ user_id: userId, tenant_id: tenantId, role })));
    return previous.sort();
  });
}

async function createOidcUser(db: Knex, keys: AccountKeys, identity: OidcIdentity, email: string, tenant: string): Promise<UserRow | undefined> {
  const tenantId = await findOrCreateTenant(db, tenant);
  const id = randomUUID();
  const rows = await withTenant(db, tenantId, (trx) =>
    trx('users')
      .insert({
        id,
        tenant_id: tenantId,
        email_ciphertext: sealString(keys.columnRing, normaliseEmail(email), emailAad(id)),
        email_index: emailIndex(keys, email),
        password_hash: null,
        must_change_password: false,
        oidc_issuer: identity.issuer,
        oidc_subject: identity.subject,
      })
      // A concurrent first login of the same identity (or e-mail) wins; the caller reads what it made.
      .onConflict()
      .ignore()
      .returning<UserRow[]>('*'),
  );
  return rows[0];
}

async function linkLocalUser(db: Knex, user: UserRow, identity: OidcIdentity): Promise<UserRow | undefined> {
  const rows = await db('users')
    .where({ id: user.id })
    .whereNull('oidc_issuer')
    .whereNull('oidc_subject')
    .update({ oidc_issuer: identity.issuer, oidc_subject: identity.subject, updated_at: db.fn.now() })
    .returning<UserRow[]>('*');
  return rows[0];
}

export interface OidcLinkOptions {
  /** Refuse every login whose provider says `email_verified: false` (BOTSERVER_OIDC_REQUIRE_VERIFIED_EMAIL). */
  requireVerifiedEmail: boolean;
  /** The tenant a new account is made in. */
  tenant?: string;
}

/**
 * The account of an OIDC identity, found by (issuer, subject). When there is none: a local account with the same
 * e-mail address that is not yet linked is linked, but only when the provider says the address is verified
 * (`email_verified: true`; absent is not verified); otherwise a new account without password is made in the
 * tenant. With `requireVerifiedEmail`, a provider that says `email_verified: false` gets no account at all. The
 * provider's roles then replace the account's memberships in its tenant.
 */
export async function findOrLinkOidcUser(db: Knex, keys: AccountKeys, identity: OidcIdentity, options: OidcLinkOptions): Promise<OidcLinkResult> {
  const tenant = options.tenant ?? OIDC_DEFAULT_TENANT;
  let user = await findByIdentity(db, identity.issuer, identity.subject);
  if (options.requireVerifiedEmail && identity.emailVerified === false) return { ok: false, reason: 'email_not_verified', user };
  let created = false;
  let linked = false;
  if (user === undefined) {
    const email = identity.email?.trim();
    if (email === undefined || email === '') return { ok: false, reason: 'email_missing', user: undefined };
    const local = await findUserByEmail(db, keys, email);
    if (local !== undefined) {
      if (local.oidc_issuer !== null || local.oidc_subject !== null) return { ok: false, reason: 'email_conflict', user: local };
      if (identity.emailVerified !== true) return { ok: false, reason: 'email_not_verified', user: local };
      user = await linkLocalUser(db, local, identity);
      linked = user !== undefined;
    } else {
      user = await createOidcUser(db, keys, identity, email, tenant);
      created = user !== undefined;
    }
    // Lost a race with a concurrent login of the same identity: take the account it made or linked.
    user ??= await findByIdentity(db, identity.issuer, identity.subject);
    if (user === undefined) return { ok: false, reason: 'email_conflict', user: undefined };
  }
  if (user.disabled || user.erased_at !== null) return { ok: false, reason: 'account_disabled', user };
  const roles = identity.roles.length === 0 ? (['user'] as Role[]) : [...identity.roles];
  const previousRoles = await replaceMemberships(db, user.id, user.tenant_id, roles);
  return { ok: true, user, created, linked, roles, previousRoles };
}
