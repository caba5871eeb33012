import type { Knex } from 'knex';

/** The identity directory: tenants and user accounts (read by the login path before a tenant is known). */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE tenants (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      name text NOT NULL UNIQUE,
      created_at timestamptz NOT NULL DEFAULT now()
    );

    CREATE TABLE users (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      email_ciphertext text NOT NULL,
      email_index text NOT NULL UNIQUE,
      password_hash text NULL,
      must_change_password boolean NOT NULL DEFAULT false,
      totp_secret_ciphertext text NULL,
      mfa_enabled boolean NOT NULL DEFAULT false,
      mfa_recovery_codes jsonb NOT NULL DEFAULT '[]'::jsonb,
      oidc_issuer text NULL,
      oidc_subject text NULL,
      disabled boolean NOT NULL DEFAULT false,
      erased_at timestamptz NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT users_oidc_identity_unique UNIQUE (oidc_issuer, oidc_subject)
    );
    CREATE INDEX users_tenant_id_idx ON users (tenant_id);

    CREATE TABLE memberships (
      user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      role text NOT NULL CHECK (role IN ('admin', 'operator', 'user')),
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (user_id, tenant_id, role)
    );
    CREATE INDEX memberships_tenant_id_idx ON memberships (tenant_id);
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS memberships; DROP TABLE IF EXISTS users; DROP TABLE IF EXISTS tenants;');
}
