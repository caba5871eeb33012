export { createDb, ensureDatabase, databaseName, withDatabaseName, type DbOptions } from './connection.js';
export { withTenant, withTenantFrom, inTenant, tenantScoped, tenantScopeValue, TENANT_SCOPE_VALUE_SQL, isUuid, inlined, lastRows } from './tenant.js';
export { queryPrepared } from './prepared.js';
export { migrateLatest, migrateRollback, pendingMigrations, type MigrationResult } from './migrate.js';
import { tenantOwnedTables as firstTenantTables } from './migrations/005_roles_and_rls.js';

/** Every table whose rows belong to one tenant (row-level security on each): 005's list plus later tables. */
export const tenantOwnedTables = [...firstTenantTables, 'message_attachments', 'email_quarantine'] as const;
export {
  API_ROLE, REPLY_ROLE, EMBED_ROLE, EMAIL_ROLE, FILES_ROLE, AUDIT_ROLE, allRoles, familyRole, type ProcessFamily,
} from './roles.js';
