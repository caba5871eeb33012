import type { Knex } from 'knex';
import { quoteIdentifier } from '../identifiers.js';
import { API_ROLE, AUDIT_ROLE, EMAIL_ROLE, EMBED_ROLE, FILES_ROLE, REPLY_ROLE, allRoles } from '../roles.js';

/** Tables whose rows belong to one tenant: row-level security shows a transaction only its tenant's rows. */
export const tenantOwnedTables = [
  'memberships', 'bots', 'conversations', 'messages', 'files', 'knowledge_documents', 'email_mailboxes',
] as const;

const identityTables = ['tenants', 'users'] as const;
const allTables = [...identityTables, ...tenantOwnedTables, 'audit_events'] as const;
const CRUD = 'SELECT, INSERT, UPDATE, DELETE';

/** Who may do what: anything not listed here is refused by PostgreSQL. Nobody may UPDATE or DELETE audit rows. */
const tableGrants: ReadonlyArray<readonly [role: string, privileges: string, tables: readonly string[]]> = [
  [API_ROLE, CRUD, [...identityTables, ...tenantOwnedTables]],
  [API_ROLE, 'SELECT', ['audit_events']],
  [REPLY_ROLE, 'SELECT', ['bots', 'conversations']],
  [REPLY_ROLE, 'SELECT, INSERT', ['messages']],
  [EMBED_ROLE, 'SELECT, UPDATE', ['knowledge_documents']],
  [EMBED_ROLE, 'SELECT', ['bots']],
  [EMAIL_ROLE, 'SELECT', ['bots']],
  [EMAIL_ROLE, 'SELECT, INSERT, UPDATE', ['conversations', 'email_mailboxes']],
  [EMAIL_ROLE, 'SELECT, INSERT', ['messages']],
  [FILES_ROLE, 'SELECT, UPDATE', ['files']],
  [AUDIT_ROLE, 'SELECT, INSERT', ['audit_events']],
];

const TENANT_MATCHES = "tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid";

/** Creates a NOLOGIN role unless it exists (roles are cluster-wide) and lets the migrating user SET ROLE to it. */
function ensureRoleSql(role: string): string {
  const literal = `'${role.replaceAll("'", "''")}'`;
  return `
    DO $$
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${literal}) THEN
        BEGIN
          CREATE ROLE ${quoteIdentifier(role)} NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
          NULL; -- created concurrently by a migration of another database
        END;
      END IF;
      IF NOT EXISTS (
        SELECT 1 FROM pg_auth_members m
        WHERE m.roleid = (SELECT oid FROM pg_roles WHERE rolname = ${literal})
          AND m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)
      ) THEN
        BEGIN
          EXECUTE format('GRANT %I TO %I', ${literal}, current_user);
        EXCEPTION WHEN unique_violation THEN
          NULL; -- granted concurrently
        END;
      END IF;
    END
    $$;`;
}

export async function up(knex: Knex): Promise<void> {
  for (const role of allRoles) await knex.raw(ensureRoleSql(role));

  const roleList = allRoles.map(quoteIdentifier).join(', ');
  const statements = [
    `GRANT USAGE ON SCHEMA public TO ${roleList}`,
    ...allTables.map((table) => `REVOKE ALL ON ${table} FROM PUBLIC, ${roleList}`),
    `REVOKE ALL ON SEQUENCE audit_events_id_seq FROM PUBLIC, ${roleList}`,
    ...tableGrants.map(([role, privileges, tables]) => `GRANT ${privileges} ON ${tables.join(', ')} TO ${quoteIdentifier(role)}`),
    `GRANT USAGE ON SEQUENCE audit_events_id_seq TO ${quoteIdentifier(AUDIT_ROLE)}`,
    ...tenantOwnedTables.flatMap((table) => [
      `ALTER TABLE ${table} ENABLE ROW LEVEL SECURITY`,
      `ALTER TABLE ${table} FORCE ROW LEVEL SECURITY`,
      `DROP POLICY IF EXISTS tenant_isolation ON ${table}`,
      `CREATE POLICY tenant_isolation ON ${table} USING (${TENANT_MATCHES}) WITH CHECK (${TENANT_MATCHES})`,
    ]),
  ];
  for (const statement of statements) await knex.raw(statement);
}

/** Removes grants and policies. The roles stay: they are cluster-wide and other databases may use them. */
export async function down(knex: Knex): Promise<void> {
  const roleList = allRoles.map(quoteIdentifier).join(', ');
  const statements = [
    ...tenantOwnedTables.flatMap((table) => [
      `DROP POLICY IF EXISTS tenant_isolation ON ${table}`,
      `ALTER TABLE ${table} NO FORCE ROW LEVEL SECURITY`,
      `ALTER TABLE ${table} DISABLE ROW LEVEL SECURITY`,
    ]),
    ...allTables.map((table) => `REVOKE ALL ON ${table} FROM ${roleList}`),
    `REVOKE ALL ON SEQUENCE audit_events_id_seq FROM ${roleList}`,
    `REVOKE USAGE ON SCHEMA public FROM ${roleList}`,
  ];
  for (const statement of statements) await knex.raw(statement);
}
