import type { Knex } from 'knex';

/**
 * Knowledge ingestion. A document is given as text or as a stored file; the `embed` worker records where it was
 * indexed (the Qdrant collection of its embedding model), how many chunks, or why it failed. A bot message that
 * answered from documents keeps its sources. The embed role reads files (to extract them) and nothing else of them;
 * the reply role reads document titles for the sources it cites.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE knowledge_documents
      ALTER COLUMN text_ciphertext DROP NOT NULL,
      ADD COLUMN file_id uuid NULL REFERENCES files (id) ON DELETE SET NULL,
      ADD COLUMN content_type text NOT NULL DEFAULT 'text/markdown',
      ADD COLUMN collection text NULL,
      ADD COLUMN failure_reason text NULL;
    ALTER TABLE messages ADD COLUMN sources_ciphertext text NULL;

    GRANT SELECT ON files TO botserver_embed;
    GRANT SELECT ON knowledge_documents TO botserver_reply;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    REVOKE SELECT ON knowledge_documents FROM botserver_reply;
    REVOKE SELECT ON files FROM botserver_embed;
    ALTER TABLE messages DROP COLUMN IF EXISTS sources_ciphertext;
    DELETE FROM knowledge_documents WHERE text_ciphertext IS NULL;
    ALTER TABLE knowledge_documents
      DROP COLUMN IF EXISTS failure_reason,
      DROP COLUMN IF EXISTS collection,
      DROP COLUMN IF EXISTS content_type,
      DROP COLUMN IF EXISTS file_id,
      ALTER COLUMN text_ciphertext SET NOT NULL;
  `);
}
