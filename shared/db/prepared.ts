import type { Knex } from 'knex';

/**
 * Runs a statement as a named prepared statement: PostgreSQL parses and plans it once per pooled connection instead
 * of once per call. The name must stand for this one text (node-postgres refuses a name reused with another).
 */
export async function queryPrepared<R>(db: Knex | Knex.Transaction, name: string, sql: string, bindings: readonly Knex.RawBinding[]): Promise<R[]> {
  const result = await db.raw<{ rows: R[] }>(sql, bindings).options({ name });
  return result.rows;
}
