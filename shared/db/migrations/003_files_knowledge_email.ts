import type { Knex } from 'knex';

/** Uploaded files, knowledge documents for retrieval, and the IMAP position of each e-mail bot's mailbox. */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    CREATE TABLE files (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      owner_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
      name_ciphertext text NOT NULL,
      content_type text NOT NULL,
      size bigint NOT NULL CHECK (size >= 0),
      storage_key text NOT NULL UNIQUE,
      status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'stored', 'failed')),
      sha256 text NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX files_tenant_owner_idx ON files (tenant_id, owner_id);

    CREATE TABLE knowledge_documents (
      id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      bot_id uuid NOT NULL REFERENCES bots (id) ON DELETE CASCADE,
      owner_id uuid NULL REFERENCES users (id) ON DELETE SET NULL,
      title_ciphertext text NOT NULL,
      text_ciphertext text NOT NULL,
      status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'indexed', 'failed')),
      chunk_count integer NOT NULL DEFAULT 0,
      created_at timestamptz NOT NULL DEFAULT now(),
      updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX knowledge_documents_tenant_bot_idx ON knowledge_documents (tenant_id, bot_id);

    CREATE TABLE email_mailboxes (
      bot_id uuid PRIMARY KEY REFERENCES bots (id) ON DELETE CASCADE,
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      uid_validity bigint NULL,
      last_uid bigint NULL,
      updated_at timestamptz NOT NULL DEFAULT now()
    );
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(
    'DROP TABLE IF EXISTS email_mailboxes; DROP TABLE IF EXISTS knowledge_documents; DROP TABLE IF EXISTS files;',
  );
}
