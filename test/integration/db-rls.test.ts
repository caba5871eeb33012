import { expect } from 'chai';
import type { Knex } from 'knex';
import { API_ROLE, EMAIL_ROLE, REPLY_ROLE, createDb, tenantOwnedTables, withTenant } from '../../shared/db/index.js';
import { INSUFFICIENT_PRIVILEGE, pgErrorOf, useTestDatabase } from '../helpers/db.js';

interface SeededTenant { tenantId: string; botId: string; conversationId: string }

/** A tenant with one bot, one conversation and one message, written through the tenant scope like the app does. */
async function seedTenant(owner: Knex, name: string): Promise<SeededTenant> {
  const [tenant] = await owner('tenants').insert({ name }).returning<Array<{ id: string }>>('id');
  const tenantId = tenant!.id;
  return withTenant(owner, tenantId, async (trx) => {
    const [bot] = await trx('bots').insert({ tenant_id: tenantId, name: `${name} bot` }).returning<Array<{ id: string }>>('id');
    const [conversation] = await trx('conversations')
      .insert({ tenant_id: tenantId, bot_id: bot!.id, channel: 'web', guest: true }).returning<Array<{ id: string }>>('id');
    await trx('messages').insert({ tenant_id: tenantId, conversation_id: conversation!.id, role: 'user', text_ciphertext: 'ct' });
    return { tenantId, botId: bot!.id, conversationId: conversation!.id };
  });
}

describe('db: row-level security isolates tenants', function () {
  this.timeout(30_000);
  const testDb = useTestDatabase();
  let a: SeededTenant;
  let b: SeededTenant;
  const api = (): Knex => testDb().dbAs(API_ROLE);

  before(async () => {
    a = await seedTenant(testDb().ownerDb, 'tenant-a');
    b = await seedTenant(testDb().ownerDb, 'tenant-b');
  });

  it('a hand-written WHERE for another tenant returns nothing', async () => {
    const rows = await withTenant(api(), a.tenantId, (trx) =>
      trx.raw<{ rows: unknown[] }>('SELECT * FROM bots WHERE tenant_id = ?', [b.tenantId]));
    expect(rows.rows).to.deep.equal([]);
  });

  it('a scoped transaction sees exactly its own tenant rows', async () => {
    const bots = await withTenant(api(), a.tenantId, (trx) => trx('bots').pluck('id'));
    expect(bots).to.deep.equal([a.botId]);
    const messages = await withTenant(api(), b.tenantId, (trx) => trx('messages').pluck('conversation_id'));
    expect(messages).to.deep.equal([b.conversationId]);
  });

  it('without a tenant scope every tenant-owned table looks empty (fail closed)', async () => {
    for (const table of tenantOwnedTables) {
      const [row] = await api()(table).count({ n: '*' });
      expect(Number(row?.n), table).to.equal(0);
    }
  });

  it('the scope ends with its transaction and never leaks to the next user of a pooled connection', async () => {
    const single = createDb({ url: testDb().url, role: API_ROLE, poolMax: 1 });
    try {
      expect(await withTenant(single, a.tenantId, (trx) => trx('bots').pluck('id'))).to.have.length(1);
      expect(await single('bots').pluck('id')).to.deep.equal([]);
    } finally {
      await single.destroy();
    }
  });

  it('inserting a row for another tenant is refused by PostgreSQL', async () => {
    const error = await pgErrorOf(withTenant(api(), a.tenantId, (trx) =>
      trx('bots').insert({ tenant_id: b.tenantId, name: 'intruder' })));
    expect(error?.code).to.equal(INSUFFICIENT_PRIVILEGE);
    expect(error?.message).to.match(/row-level security/);
  });

  it('moving an own row to another tenant is refused by PostgreSQL', async () => {
    const error = await pgErrorOf(withTenant(api(), a.tenantId, (trx) =>
      trx('bots').where({ id: a.botId }).update({ tenant_id: b.tenantId })));
    expect(error?.code).to.equal(INSUFFICIENT_PRIVILEGE);
  });

  it("updates and deletes of another tenant's rows affect nothing", async () => {
    const [updated, deleted, deletedMessages] = await withTenant(api(), a.tenantId, async (trx) => [
      await trx('bots').where({ tenant_id: b.tenantId }).update({ name: 'hijacked' }),
      await trx('bots').where({ id: b.botId }).delete(),
      await trx('messages').where({ conversation_id: b.conversationId }).delete(),
    ]);
    expect([updated, deleted, deletedMessages]).to.deep.equal([0, 0, 0]);
    const names = await withTenant(api(), b.tenantId, (trx) => trx('bots').pluck('name'));
    expect(names).to.deep.equal(['tenant-b bot']);
  });

  it('worker roles are scoped the same way', async () => {
    for (const role of [REPLY_ROLE, EMAIL_ROLE]) {
      const worker = testDb().dbAs(role);
      expect(await worker('messages').pluck('id'), role).to.deep.equal([]);
      const seen = await withTenant(worker, b.tenantId, (trx) =>
        trx('messages').whereIn('conversation_id', [a.conversationId, b.conversationId]).pluck('conversation_id'));
      expect(seen, role).to.deep.equal([b.conversationId]);
      const error = await pgErrorOf(withTenant(worker, b.tenantId, (trx) =>
        trx('messages').insert({ tenant_id: a.tenantId, conversation_id: a.conversationId, role: 'bot', text_ciphertext: 'x' })));
      expect(error?.code, role).to.equal(INSUFFICIENT_PRIVILEGE);
    }
  });

  it('the identity directory (tenants, users) has no RLS but only the api role may use it', async () => {
    const names = await api()('tenants').orderBy('name').pluck('name');
    expect(names).to.deep.equal(['tenant-a', 'tenant-b']);
    const error = await pgErrorOf(testDb().dbAs(REPLY_ROLE)('tenants').select('id'));
    expect(error?.code).to.equal(INSUFFICIENT_PRIVILEGE);
  });
});
