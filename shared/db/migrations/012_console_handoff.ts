import type { Knex } from 'knex';

/** The activity trigger's function as 012 made it (015's down puts it back). */
export const TOUCH_ACTIVITY_FUNCTION = `FUNCTION conversations_touch_activity() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
      BEGIN
        UPDATE public.conversations SET last_activity_at = NEW.created_at
          WHERE id = NEW.conversation_id AND last_activity_at < NEW.created_at;
        RETURN NULL;
      END $$;`;

/**
 * The operator console: who answers a conversation (the bot, nobody yet because the visitor asked for a person,
 * or an operator), its last activity for the console's list, operator messages, and the origins that may embed a
 * public bot's widget.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE conversations
      ADD COLUMN status text NOT NULL DEFAULT 'bot' CHECK (status IN ('bot', 'waiting', 'operator')),
      ADD COLUMN operator_id uuid NULL REFERENCES users (id) ON DELETE SET NULL,
      ADD COLUMN last_activity_at timestamptz NOT NULL DEFAULT now();
    UPDATE conversations c
      SET last_activity_at = coalesce((SELECT max(m.created_at) FROM messages m WHERE m.conversation_id = c.id), c.created_at);
    CREATE INDEX conversations_tenant_activity_idx ON conversations (tenant_id, last_activity_at DESC, id DESC);
    CREATE INDEX conversations_waiting_idx ON conversations (tenant_id) WHERE status = 'waiting';

    ALTER TABLE messages DROP CONSTRAINT messages_role_check;
    ALTER TABLE messages ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'bot', 'operator'));

    -- Every family that stores a message (API, reply, e-mail) moves its conversation's activity forward without
    -- an UPDATE grant on conversations: the function runs as its owner, and row-level security still scopes it to
    -- the transaction's tenant.
    CREATE ${TOUCH_ACTIVITY_FUNCTION}
    REVOKE ALL ON FUNCTION conversations_touch_activity() FROM PUBLIC;
    CREATE TRIGGER messages_touch_conversation AFTER INSERT ON messages
      FOR EACH ROW EXECUTE FUNCTION conversations_touch_activity();

    -- A rule that hands the conversation to a person is applied by the reply worker.
    GRANT UPDATE (status) ON conversations TO botserver_reply;

    ALTER TABLE bots ADD COLUMN allowed_origins text[] NOT NULL DEFAULT '{}';
    -- Like public_bot_tenant: what an anonymous page needs to know about a public, live bot before any tenant is set.
    CREATE FUNCTION public_bot_origins(bot uuid) RETURNS text[]
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
      AS $$ SELECT allowed_origins FROM public.bots WHERE id = bot AND public AND deleted_at IS NULL $$;
    REVOKE ALL ON FUNCTION public_bot_origins(uuid) FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION public_bot_origins(uuid) TO botserver_api;
    -- Every origin some public bot's widget may run on: a CORS preflight carries no token to tell the bot by.
    CREATE FUNCTION public_widget_origins() RETURNS SETOF text
      LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
      AS $$ SELECT DISTINCT unnest(allowed_origins) FROM public.bots WHERE public AND deleted_at IS NULL $$;
    REVOKE ALL ON FUNCTION public_widget_origins() FROM PUBLIC;
    GRANT EXECUTE ON FUNCTION public_widget_origins() TO botserver_api;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP FUNCTION IF EXISTS public_widget_origins();
    DROP FUNCTION IF EXISTS public_bot_origins(uuid);
    ALTER TABLE bots DROP COLUMN IF EXISTS allowed_origins;
    REVOKE UPDATE (status) ON conversations FROM botserver_reply;
    DROP TRIGGER IF EXISTS messages_touch_conversation ON messages;
    DROP FUNCTION IF EXISTS conversations_touch_activity();
    DELETE FROM messages WHERE role = 'operator';
    ALTER TABLE messages DROP CONSTRAINT messages_role_check;
    ALTER TABLE messages ADD CONSTRAINT messages_role_check CHECK (role IN ('user', 'bot'));
    DROP INDEX IF EXISTS conversations_waiting_idx;
    DROP INDEX IF EXISTS conversations_tenant_activity_idx;
    ALTER TABLE conversations DROP COLUMN IF EXISTS last_activity_at, DROP COLUMN IF EXISTS operator_id, DROP COLUMN IF EXISTS status;
  `);
}
