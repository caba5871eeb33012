import type { Knex } from 'knex';
import { TOUCH_ACTIVITY_FUNCTION } from './012_console_handoff.js';

/**
 * The chat's hot path reads in one round trip each, planned once per connection. A tenant-scoped read used to go as
 * `SELECT set_config(...); SELECT ...` with its values written into the text, which PostgreSQL parses and plans
 * for every message. These functions set the tenant, then run their query, which PL/pgSQL plans once per session;
 * the caller runs `SELECT * FROM fn($1, ...)` as a named (prepared) statement.
 *
 * They are SECURITY INVOKER: the query runs as the calling role, under row-level security, in the tenant the call
 * names. `SET search_path` gives the function a GUC level of its own, so the tenant set inside (transaction-local)
 * ends with the call.
 *
 * A bot's reply no longer moves its conversation's last activity when the activity is less than a second older:
 * the visitor's message it answers moved it a moment before. Each move writes a new version of the conversation's
 * row and of its three indexes, the largest cost of storing a message.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    -- The API, before it stores a message: the conversation, when it is in the tenant.
    CREATE FUNCTION app_conversation(tenant uuid, conversation uuid)
      RETURNS TABLE (id uuid, tenant_id uuid, bot_id uuid, user_id uuid, guest boolean, channel text, status text, operator_id uuid)
      LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
      #variable_conflict use_column
      BEGIN
        PERFORM set_config('app.tenant_id', tenant::text, true);
        RETURN QUERY SELECT c.id, c.tenant_id, c.bot_id, c.user_id, c.guest, c.channel, c.status, c.operator_id
          FROM public.conversations c WHERE c.id = conversation;
      END $$;
    REVOKE ALL ON FUNCTION app_conversation(uuid, uuid) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION app_conversation(uuid, uuid) TO botserver_api;

    -- The reply worker's turn: the conversation and its status, the bot's version (and its profile unless the
    -- worker holds that version), whether it has indexed documents, the message, and a reply already stored.
    CREATE FUNCTION app_reply_turn(tenant uuid, conversation uuid, message uuid, held_bot uuid, held_version text, with_knowledge boolean)
      RETURNS TABLE (
        bot_id uuid, channel text, status text, bot_live boolean, bot_version text, bot_profile jsonb, has_knowledge boolean,
        m_id uuid, m_conversation_id uuid, m_role text, m_text_ciphertext text, m_created_at timestamptz, m_reply_to uuid, m_sources_ciphertext text,
        r_id uuid, r_conversation_id uuid, r_role text, r_text_ciphertext text, r_created_at timestamptz, r_reply_to uuid, r_sources_ciphertext text)
      LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
      #variable_conflict use_column
      BEGIN
        PERFORM set_config('app.tenant_id', tenant::text, true);
        RETURN QUERY
          SELECT c.bot_id, c.channel, c.status, b.deleted_at IS NULL,
            (extract(epoch FROM b.updated_at) * 1000000)::bigint::text,
            CASE WHEN b.id = held_bot AND (extract(epoch FROM b.updated_at) * 1000000)::bigint::text = held_version THEN NULL
              ELSE jsonb_build_object('name', b.name, 'rules', b.rules, 'llm', b.llm) END,
            with_knowledge AND EXISTS (SELECT 1 FROM public.knowledge_documents k WHERE k.bot_id = c.bot_id AND k.status = 'indexed'),
            m.id, m.conversation_id, m.role, m.text_ciphertext, m.created_at, m.reply_to, m.sources_ciphertext,
            r.id, r.conversation_id, r.role, r.text_ciphertext, r.created_at, r.reply_to, r.sources_ciphertext
          FROM public.conversations c
          JOIN public.bots b ON b.id = c.bot_id
          LEFT JOIN public.messages m ON m.id = message AND m.conversation_id = c.id
          LEFT JOIN public.messages r ON r.reply_to = message
          WHERE c.id = conversation;
      END $$;
    REVOKE ALL ON FUNCTION app_reply_turn(uuid, uuid, uuid, uuid, text, boolean) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION app_reply_turn(uuid, uuid, uuid, uuid, text, boolean) TO botserver_reply;

    CREATE OR REPLACE FUNCTION conversations_touch_activity() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
      BEGIN
        UPDATE public.conversations SET last_activity_at = NEW.created_at
          WHERE id = NEW.conversation_id
            AND last_activity_at < NEW.created_at - CASE WHEN NEW.role = 'bot' THEN interval '1 second' ELSE interval '0' END;
        RETURN NULL;
      END $$;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE OR REPLACE ${TOUCH_ACTIVITY_FUNCTION}
    DROP FUNCTION IF EXISTS app_reply_turn(uuid, uuid, uuid, uuid, text, boolean);
    DROP FUNCTION IF EXISTS app_conversation(uuid, uuid);
  `);
}
