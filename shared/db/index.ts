export { createDb, ensureDatabase, databaseName, withDatabaseName, type DbOptions } from './connection.js';
export { withTenant, isUuid } from './tenant.js';
export { migrateLatest, migrateRollback, pendingMigrations, type MigrationResult } from './migrate.js';
export { tenantOwnedTables } from './migrations/005_roles_and_rls.js';
export {
  API_ROLE, REPLY_ROLE, EMBED_ROLE, EMAIL_ROLE, FILES_ROLE, AUDIT_ROLE, allRoles, familyRole, type ProcessFamily,
} from './roles.js';
