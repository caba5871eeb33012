import type { Knex } from 'knex';

/**
 * Replies and public bots. A bot message records the user message it answers; the unique index makes "exactly one reply per accepted
 * message" a database fact, whatever a crashed and retried worker does.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE messages ADD COLUMN reply_to uuid NULL REFERENCES messages (id) ON DELETE CASCADE;
    CREATE UNIQUE INDEX messages_reply_to_unique ON messages (reply_to) WHERE reply_to IS NOT NULL;

    -- Anonymous visitors of a public bot have no tenant yet: this function (running as the owner) tells the tenant
    -- of a public, live bot and nothing else, so row-level security stays on for everything the API role reads.
    CREATE FUNCTION public_bot_tenant(bot uuid) RETURNS uuid
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
      AS $$ SELECT tenant_id FROM public.bots WHERE id = bot AND public AND deleted_at IS NULL $$;
    -- The function runs as the owner, who is subject to forced row-level security unless a superuser.
    CREATE POLICY bots_public_lookup ON bots FOR SELECT TO CURRENT_USER USING (public AND deleted_at IS NULL);
    REVOKE ALL ON FUNCTION public_bot_tenant(uuid) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION public_bot_tenant(uuid) TO botserver_api;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(
    'DROP FUNCTION IF EXISTS public_bot_tenant(uuid); DROP POLICY IF EXISTS bots_public_lookup ON bots; DROP INDEX IF EXISTS messages_reply_to_unique; ALTER TABLE messages DROP COLUMN IF EXISTS reply_to;',
  );
}
