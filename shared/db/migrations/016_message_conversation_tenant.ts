import type { Knex } from 'knex';

/**
 * A message belongs to its conversation's tenant, and the database now says so: one foreign key on
 * (conversation_id, tenant_id) replaces the two on conversation_id and on tenant_id. Before, only the application
 * kept a message's tenant equal to its conversation's.
 *
 * It also takes a lock off every message: the foreign key on tenant_id had each INSERT lock its tenant's row (FOR
 * KEY SHARE), one row shared by every message of the tenant, so concurrent INSERTs met there and made PostgreSQL
 * record them as a multixact. The composite key locks the conversation's row, which the INSERT's activity trigger
 * updates anyway. Deletes cascade as before: a tenant's conversations go with it, and their messages with them.
 *
 * The key is added NOT VALID, so this migration holds its locks only for a moment while the previous release keeps
 * writing; migration 017 checks the existing rows in a transaction of its own, without blocking writes.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE conversations ADD CONSTRAINT conversations_id_tenant_key UNIQUE (id, tenant_id);
    ALTER TABLE messages
      ADD CONSTRAINT messages_conversation_tenant_fkey FOREIGN KEY (conversation_id, tenant_id)
        REFERENCES conversations (id, tenant_id) ON DELETE CASCADE NOT VALID,
      DROP CONSTRAINT messages_conversation_id_fkey,
      DROP CONSTRAINT messages_tenant_id_fkey;
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    ALTER TABLE messages
      ADD CONSTRAINT messages_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES conversations (id) ON DELETE CASCADE,
      ADD CONSTRAINT messages_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
      DROP CONSTRAINT messages_conversation_tenant_fkey;
    ALTER TABLE conversations DROP CONSTRAINT conversations_id_tenant_key;
  `);
}
