import type { Knex } from 'knex';

/**
 * E-mail channel bookkeeping. One message per (tenant, bot-scoped Message-ID index), so a mail fetched twice (a
 * crash before the IMAP position was saved, a UIDVALIDITY change) is stored and answered once. The sealed headers
 * a reply needs (Message-ID, References, sender, subject) sit next to the message. The e-mail worker finds the
 * mailboxes to watch, across tenants, through a definer function that returns ids only.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE messages ADD COLUMN email_meta_ciphertext text NULL;
    CREATE UNIQUE INDEX messages_email_message_id_unique ON messages (tenant_id, email_message_id_index)
      WHERE email_message_id_index IS NOT NULL;
    GRANT UPDATE (email_message_id_index, email_meta_ciphertext) ON messages TO botserver_email;

    CREATE FUNCTION email_active_mailboxes() RETURNS TABLE (bot_id uuid, tenant_id uuid)
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
      AS $$ SELECT id, tenant_id FROM public.bots WHERE email_channel_ciphertext IS NOT NULL AND deleted_at IS NULL $$;
    -- The function runs as the owner, who is subject to forced row-level security unless a superuser.
    CREATE POLICY bots_email_lookup ON bots FOR SELECT TO CURRENT_USER USING (email_channel_ciphertext IS NOT NULL AND deleted_at IS NULL);
    REVOKE ALL ON FUNCTION email_active_mailboxes() FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION email_active_mailboxes() TO botserver_email;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP FUNCTION IF EXISTS email_active_mailboxes();
    DROP POLICY IF EXISTS bots_email_lookup ON bots;
    REVOKE UPDATE (email_message_id_index, email_meta_ciphertext) ON messages FROM botserver_email;
    DROP INDEX IF EXISTS messages_email_message_id_unique;
    ALTER TABLE messages DROP COLUMN IF EXISTS email_meta_ciphertext;
  `);
}
