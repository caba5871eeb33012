import type { Knex } from 'knex';

/**
 * Checks the existing messages against the key migration 016 added NOT VALID. VALIDATE CONSTRAINT takes only a
 * SHARE UPDATE EXCLUSIVE lock, so messages are still written while it reads them; new rows were checked from 016 on.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE messages VALIDATE CONSTRAINT messages_conversation_tenant_fkey');
}

/** A validated key stays as it is: 016's down removes it. */
export async function down(): Promise<void> {}
