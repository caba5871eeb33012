import type { Knex } from 'knex';

/**
 * Inbound mail the e-mail worker gave up on (it failed `attempts` times, or it is too large): the mailbox's stored
 * position moves past it in the same transaction, so it never blocks the mail behind it. Only the place (UIDVALIDITY,
 * UID) and the reason are kept, no content; an operator finds the mail in the mailbox by its UID.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE email_quarantine (
      id uuid PRIMARY KEY,
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      bot_id uuid NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
      uid_validity bigint NOT NULL,
      uid bigint NOT NULL,
      reason text NOT NULL CHECK (reason IN ('too_large', 'failed', 'crashed')),
      attempts integer NOT NULL,
      size bigint NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      UNIQUE (bot_id, uid_validity, uid)
    );
    CREATE INDEX email_quarantine_tenant_bot_idx ON email_quarantine (tenant_id, bot_id, created_at DESC);
    ALTER TABLE email_quarantine ENABLE ROW LEVEL SECURITY;
    ALTER TABLE email_quarantine FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON email_quarantine
      USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
      WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
    REVOKE ALL ON email_quarantine FROM PUBLIC;
    GRANT SELECT, INSERT ON email_quarantine TO botserver_email;
    GRANT SELECT ON email_quarantine TO botserver_api;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS email_quarantine;');
}
