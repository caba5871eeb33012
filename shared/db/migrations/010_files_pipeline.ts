import type { Knex } from 'knex';

/**
 * The file pipeline. A file's content is encrypted under its own data key; the key is stored wrapped by
 * BOTSERVER_ENCRYPTION_KEY (an envelope that names its key id, so rotation re-wraps keys, not content).
 * Files that came by e-mail have no owning account (`owner_id` NULL) and are reached through their message.
 * `message_attachments` links messages to files, in order, in one tenant.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE files
      ALTER COLUMN owner_id DROP NOT NULL,
      ADD COLUMN source text NOT NULL DEFAULT 'upload' CHECK (source IN ('upload', 'email')),
      ADD COLUMN wrapped_key text NULL,
      ADD COLUMN chunk_size integer NULL CHECK (chunk_size > 0),
      ADD COLUMN failure_reason text NULL;

    CREATE TABLE message_attachments (
      tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
      message_id uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
      file_id uuid NOT NULL REFERENCES files (id) ON DELETE CASCADE,
      position smallint NOT NULL CHECK (position >= 0),
      PRIMARY KEY (message_id, file_id)
    );
    CREATE INDEX message_attachments_file_idx ON message_attachments (file_id);

    ALTER TABLE message_attachments ENABLE ROW LEVEL SECURITY;
    ALTER TABLE message_attachments FORCE ROW LEVEL SECURITY;
    CREATE POLICY tenant_isolation ON message_attachments
      USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
      WITH CHECK (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

    REVOKE ALL ON message_attachments FROM PUBLIC;
    GRANT SELECT, INSERT, UPDATE, DELETE ON message_attachments TO botserver_api;
    GRANT SELECT, INSERT ON message_attachments TO botserver_email;
    GRANT INSERT ON files TO botserver_email;
    GRANT SELECT (id, status) ON files TO botserver_email;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    REVOKE INSERT ON files FROM botserver_email;
    REVOKE SELECT (id, status) ON files FROM botserver_email;
    DROP TABLE IF EXISTS message_attachments;
    DELETE FROM files WHERE owner_id IS NULL;
    ALTER TABLE files
      DROP COLUMN IF EXISTS failure_reason,
      DROP COLUMN IF EXISTS chunk_size,
      DROP COLUMN IF EXISTS wrapped_key,
      DROP COLUMN IF EXISTS source,
      ALTER COLUMN owner_id SET NOT NULL;
  `);
}
