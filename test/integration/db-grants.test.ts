import { expect } from 'chai';
import type { Knex } from 'knex';
import {
  API_ROLE, AUDIT_ROLE, EMBED_ROLE, FILES_ROLE, REPLY_ROLE, withTenant,
} from '../../shared/db/index.js';
import { INSUFFICIENT_PRIVILEGE, pgErrorOf, useTestDatabase } from '../helpers/db.js';

function auditRow(type: string): Record<string, unknown> {
  return { type, outcome: 'success', actor: 'user:1', details: JSON.stringify({ n: 1 }), prev_hash: '0'.repeat(64), hash: 'h' };
}

describe('db: least-privilege grants and the append-only audit table', function () {
  this.timeout(30_000);
  const testDb = useTestDatabase();
  const audit = (): Knex => testDb().dbAs(AUDIT_ROLE);
  let tenantId: string;

  before(async () => {
    const [tenant] = await testDb().ownerDb('tenants').insert({ name: 'grants' }).returning<Array<{ id: string }>>('id');
    tenantId = tenant!.id;
  });

  it('the audit role inserts events and reads the previous hash', async () => {
    await audit()('audit_events').insert(auditRow('auth.login.success'));
    await audit()('audit_events').insert(auditRow('auth.logout'));
    const last = await audit()('audit_events').orderBy('id', 'desc').first<{ id: string; hash: string } | undefined>('id', 'hash');
    expect(last?.hash).to.equal('h');
  });

  it("the audit role's UPDATE, DELETE and TRUNCATE are refused with permission denied", async () => {
    for (const query of [
      audit()('audit_events').update({ outcome: 'failure' }),
      audit()('audit_events').delete(),
      audit().raw('TRUNCATE audit_events'),
    ]) {
      const error = await pgErrorOf(query);
      expect(error?.code).to.equal(INSUFFICIENT_PRIVILEGE);
      expect(error?.message).to.match(/permission denied/);
    }
  });

  it('the audit role can read no other table', async () => {
    for (const table of ['users', 'messages', 'tenants', 'bots']) {
      const error = await pgErrorOf(withTenant(audit(), tenantId, (trx) => trx(table).select('*')));
      expect(error?.code, table).to.equal(INSUFFICIENT_PRIVILEGE);
    }
  });

  it("the owner's UPDATE, DELETE and TRUNCATE are stopped by the trigger", async () => {
    for (const sql of ["UPDATE audit_events SET outcome = 'failure'", 'DELETE FROM audit_events', 'TRUNCATE audit_events']) {
      const error = await pgErrorOf(testDb().ownerDb.raw(sql));
      expect(error?.message, sql).to.match(/append-only/);
    }
    const [row] = await testDb().ownerDb('audit_events').count({ n: '*' });
    expect(Number(row?.n)).to.equal(2);
  });

  it('the owner can drop the trigger (how tests simulate tampering); rolled back here', async () => {
    const rollBack = new Error('roll back');
    let changed = 0;
    const outcome = await testDb().ownerDb.transaction(async (trx) => {
      await trx.raw('DROP TRIGGER audit_events_append_only ON audit_events');
      changed = await trx('audit_events').update({ outcome: 'tampered' });
      throw rollBack;
    }).catch((error: unknown) => error);
    expect(outcome).to.equal(rollBack);
    expect(changed).to.equal(2);
    expect((await pgErrorOf(testDb().ownerDb('audit_events').delete()))?.message).to.match(/append-only/);
  });

  it('the api role reads audit events but may not write them', async () => {
    expect(await testDb().dbAs(API_ROLE)('audit_events').pluck('type')).to.have.length(2);
    for (const query of [
      testDb().dbAs(API_ROLE)('audit_events').insert(auditRow('data.write')),
      testDb().dbAs(API_ROLE)('audit_events').delete(),
    ]) {
      expect((await pgErrorOf(query))?.code).to.equal(INSUFFICIENT_PRIVILEGE);
    }
  });

  it('each worker role is limited to its own job', async () => {
    const refused: Array<[string, (trx: Knex.Transaction) => PromiseLike<unknown>]> = [
      [REPLY_ROLE, (trx) => trx('users').select('id')],
      [REPLY_ROLE, (trx) => trx('messages').delete()],
      [REPLY_ROLE, (trx) => trx('bots').update({ name: 'x' })],
      [EMBED_ROLE, (trx) => trx('knowledge_documents').delete()],
      [EMBED_ROLE, (trx) => trx('messages').select('id')],
      [FILES_ROLE, (trx) => trx('bots').select('id')],
      [FILES_ROLE, (trx) => trx('files').delete()],
    ];
    for (const [role, query] of refused) {
      const error = await pgErrorOf(withTenant(testDb().dbAs(role), tenantId, async (trx) => query(trx)));
      expect(error?.code, `${role}: ${query.toString()}`).to.equal(INSUFFICIENT_PRIVILEGE);
    }
  });
});
