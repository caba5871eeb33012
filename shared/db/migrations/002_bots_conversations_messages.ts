import type { Knex } from 'knex';

/** Bots, their conversations (web or e-mail threads) and the encrypted messages in them. */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE bots (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      name text NOT NULL,
      public boolean NOT NULL DEFAULT false,
      greeting text NULL,
      rules jsonb NOT NULL DEFAULT '[]'::jsonb,
      llm jsonb NULL,
      email_channel_ciphertext text NULL,
      email_address_index text NULL,
      created_by uuid NULL REFERENCES users (id) ON DELETE SET NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now(),
      deleted_at timestamptz NULL
    );
    CREATE INDEX bots_tenant_id_idx ON bots (tenant_id);
    CREATE INDEX bots_email_address_index_idx ON bots (email_address_index) WHERE email_address_index IS NOT NULL;

    CREATE TABLE conversations (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      bot_id uuid NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
      user_id uuid NULL REFERENCES users (id) ON DELETE SET NULL,
      guest boolean NOT NULL DEFAULT false,
      channel text NOT NULL CHECK (channel IN ('web', 'email')),
      email_thread_key text NULL,
      subject_ciphertext text NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX conversations_tenant_bot_idx ON conversations (tenant_id, bot_id);
    CREATE INDEX conversations_user_id_idx ON conversations (user_id) WHERE user_id IS NOT NULL;
    CREATE INDEX conversations_email_thread_idx ON conversations (bot_id, email_thread_key)
      WHERE email_thread_key IS NOT NULL;

    CREATE TABLE messages (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
      role text NOT NULL CHECK (role IN ('user', 'bot')),
      text_ciphertext text NOT NULL,
      client_message_id text NULL,
      email_message_id_index text NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT messages_client_message_id_unique UNIQUE (conversation_id, client_message_id)
    );
    CREATE INDEX messages_conversation_created_idx ON messages (conversation_id, created_at);
    CREATE INDEX messages_email_message_id_idx ON messages (tenant_id, email_message_id_index)
      WHERE email_message_id_index IS NOT NULL;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS messages; DROP TABLE IF EXISTS conversations; DROP TABLE IF EXISTS bots;');
}
