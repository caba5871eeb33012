import type { Knex } from 'knex';
import { migrations, type NamedMigration } from './migrations/index.js';

/** Feeds knex's migrator from the static list instead of scanning a directory. */
const staticMigrationSource: Knex.MigrationSource<NamedMigration> = {
  getMigrations: () => Promise.resolve([...migrations]),
  getMigrationName: (migration) => migration.name,
  getMigration: (migration) => Promise.resolve({ up: migration.up, down: migration.down }),
};

const migratorConfig: Knex.MigratorConfig = {
  migrationSource: staticMigrationSource,
  tableName: 'knex_migrations',
};

export interface MigrationResult {
  batch: number;
  applied: string[];
}

function toResult(raw: unknown): MigrationResult {
  const [batch, applied] = raw as [number, string[]];
  return { batch, applied };
}

/** Applies every pending migration (each in its own transaction). Running it again is a no-op. */
export async function migrateLatest(knex: Knex): Promise<MigrationResult> {
  return toResult(await knex.migrate.latest(migratorConfig));
}

/** Undoes the last batch, or with `all` every applied migration. */
export async function migrateRollback(knex: Knex, all = false): Promise<MigrationResult> {
  return toResult(await knex.migrate.rollback(migratorConfig, all));
}

/** Names of migrations not applied yet. */
export async function pendingMigrations(knex: Knex): Promise<string[]> {
  const [, pending] = (await knex.migrate.list(migratorConfig)) as [unknown, NamedMigration[]];
  return pending.map((migration) => migration.name);
}
