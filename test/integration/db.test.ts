import { migrations } from '../../shared/db/migrations/index.js';
import { expect } from 'chai';
import { ValidationError } from '../../shared/errors.js';
import {
  API_ROLE, allRoles, createDb, ensureDatabase, familyRole, migrateLatest, migrateRollback, pendingMigrations,
  withDatabaseName, withTenant,
} from '../../shared/db/index.js';
import { createTestDatabase, dropDatabase, useTestDatabase, type TestDatabase } from '../helpers/db.js';

const ALL_MIGRATIONS = migrations.map((migration) => migration.name);

async function tableNames(db: TestDatabase): Promise<string[]> {
  const rows = await db.ownerDb('pg_tables').where({ schemaname: 'public' }).whereNot('tablename', 'like', 'knex_%')
    .orderBy('tablename').pluck('tablename');
  return rows as string[];
}

describe('db: migrations', function () {
  this.timeout(60_000);
  let db: TestDatabase;
  before(async () => { db = await createTestDatabase({ migrate: false }); });
  after(async () => { await db.destroy(); });

  it('creates every table on an empty database', async () => {
    expect(await pendingMigrations(db.ownerDb)).to.deep.equal(ALL_MIGRATIONS);
    const result = await migrateLatest(db.ownerDb);
    expect(result.applied).to.deep.equal(ALL_MIGRATIONS);
    expect(await tableNames(db)).to.deep.equal([
      'audit_checkpoints', 'audit_events', 'audit_verify_runs', 'bots', 'conversations', 'email_mailboxes', 'email_quarantine', 'files', 'knowledge_documents', 'memberships',
      'message_attachments', 'messages', 'tenants', 'users',
    ]);
  });

  it('is a no-op when run again', async () => {
    const result = await migrateLatest(db.ownerDb);
    expect(result.applied).to.deep.equal([]);
    expect(await pendingMigrations(db.ownerDb)).to.deep.equal([]);
  });

  it('rolls everything back and applies it again', async () => {
    const down = await migrateRollback(db.ownerDb, true);
    expect(down.applied).to.have.members(ALL_MIGRATIONS);
    expect(await tableNames(db)).to.deep.equal([]);
    const up = await migrateLatest(db.ownerDb);
    expect(up.applied).to.deep.equal(ALL_MIGRATIONS);
    const [row] = await db.dbAs(API_ROLE)('tenants').count({ n: '*' });
    expect(Number(row?.n)).to.equal(0);
  });

  it('leaves the roles in place when rolled back (they are cluster-wide)', async () => {
    const roles = await db.ownerDb('pg_roles').whereIn('rolname', [...allRoles]).pluck('rolname');
    expect(roles).to.have.members([...allRoles]);
  });
});

describe('db: connections', function () {
  this.timeout(30_000);
  const testDb = useTestDatabase();

  it('ensureDatabase is idempotent for an existing database', async () => {
    await ensureDatabase(testDb().url);
    await ensureDatabase(testDb().url);
  });

  it('creates the NOLOGIN family roles, and the migrating user may SET ROLE to each', async () => {
    expect(Object.values(familyRole)).to.have.members([...allRoles]);
    const rows = await testDb().ownerDb('pg_roles').whereIn('rolname', [...allRoles]).select('rolname', 'rolcanlogin');
    expect(rows).to.have.length(allRoles.length);
    for (const row of rows as Array<{ rolcanlogin: boolean }>) expect(row.rolcanlogin).to.equal(false);
  });

  for (const [family, role] of Object.entries(familyRole)) {
    it(`the ${family} family pool works as ${role} on every connection`, async () => {
      const pool = testDb().dbAs(role);
      const results = await Promise.all([1, 2, 3].map(() => pool.raw<{ rows: Array<{ who: string }> }>(
        'SELECT current_user AS who',
      )));
      for (const result of results) expect(result.rows[0]?.who).to.equal(role);
    });
  }

  it('refuses a role name that is not a plain identifier, before connecting', () => {
    expect(() => createDb({ url: testDb().url, role: 'botserver_api"; DROP TABLE bots; --' })).to.throw(RangeError);
  });

  it('ensureDatabase quotes a hostile database name instead of executing it', async () => {
    const hostileName = `botserver_test_${Date.now()}"; DROP DATABASE postgres; --`;
    const url = withDatabaseName(testDb().url, hostileName);
    try {
      await ensureDatabase(url);
      await ensureDatabase(url);
      const names = await testDb().ownerDb('pg_database').whereIn('datname', [hostileName, 'postgres']).pluck('datname');
      expect(names).to.have.members([hostileName, 'postgres']);
    } finally {
      await dropDatabase(url);
    }
  });

  it('withTenant refuses a SQL-injection tenant id with ValidationError before any query', async () => {
    const pool = createDb({ url: testDb().url, role: API_ROLE, poolMax: 1 });
    let queries = 0;
    pool.on('query', () => { queries += 1; });
    try {
      for (const hostileId of ["'; DROP TABLE bots; --", "00000000-0000-0000-0000-000000000000' OR '1'='1", '', 'x']) {
        let ran = false;
        const failure = await withTenant(pool, hostileId, () => { ran = true; return Promise.resolve(); })
          .then(() => undefined, (error: unknown) => error);
        expect(failure).to.be.instanceOf(ValidationError);
        expect((failure as ValidationError).status).to.equal(400);
        expect(ran).to.equal(false);
      }
      expect(queries).to.equal(0);
    } finally {
      await pool.destroy();
    }
  });
});
