import { expect } from 'chai';
import fc from 'fast-check';
import type { Knex } from 'knex';
import { Keys } from '../../shared/keys.js';
import { storeMessage } from '../../shared/chat/index.js';
import { API_ROLE, REPLY_ROLE, createDb, inTenant, inlined, tenantScoped, tenantScopeValue, withTenant } from '../../shared/db/index.js';
import { testConfig } from '../helpers/config.js';
import { useTestDatabase } from '../helpers/db.js';

interface Seeded { tenantId: string; conversationId: string }

async function seedTenant(owner: Knex, name: string): Promise<Seeded> {
  const [tenant] = await owner('tenants').insert({ name }).returning<Array<{ id: string }>>('id');
  const tenantId = tenant!.id;
  return withTenant(owner, tenantId, async (trx) => {
    const [bot] = await trx('bots').insert({ tenant_id: tenantId, name: `${name} bot` }).returning<Array<{ id: string }>>('id');
    const [conversation] = await trx('conversations').insert({ tenant_id: tenantId, bot_id: bot!.id, channel: 'web' }).returning<Array<{ id: string }>>('id');
    return { tenantId, conversationId: conversation!.id };
  });
}

/**
 * The one-round-trip tenant scopes of the chat's hot path: `inTenant` (scope and a read in one simple-protocol
 * query, values written into the SQL only when they cannot need escaping) and `tenantScopeValue` (an INSERT that
 * scopes itself). Both must show and write only the tenant's rows and leave nothing behind on the connection.
 */
describe('db: one-round-trip tenant scopes', function () {
  this.timeout(30_000);
  const testDb = useTestDatabase();
  let a: Seeded;
  let b: Seeded;
  let single: Knex;
  let keys: Keys;

  before(async () => {
    a = await seedTenant(testDb().ownerDb, 'scope-a');
    b = await seedTenant(testDb().ownerDb, 'scope-b');
    single = createDb({ url: testDb().url, role: REPLY_ROLE, poolMax: 1 });
    keys = new Keys(testConfig().secrets);
  });
  after(async () => {
    await single.destroy();
    keys.zeroize();
  });

  it('inTenant reads only the tenant\'s rows, and the scope ends with the statement on that very connection', async () => {
    const own = await inTenant<{ id: string }>(single, a.tenantId, single('conversations').select('id'));
    expect(own.map((row) => row.id)).to.deep.equal([a.conversationId]);
    const other = await inTenant<{ id: string }>(single, a.tenantId, single('conversations').where({ id: b.conversationId }).select('id'));
    expect(other).to.deep.equal([]);
    expect(await single('conversations').pluck('id')).to.deep.equal([]);
    const [setting] = (await single.raw<{ rows: Array<{ tenant: string | null }> }>("SELECT current_setting('app.tenant_id', true) AS tenant")).rows;
    expect(setting?.tenant ?? '').to.equal('');
  });

  it('a message stored with tenantScopeValue lands in its tenant only, and the scope does not outlive the INSERT', async () => {
    const { message, created } = await storeMessage(single, keys.columnRing, { tenantId: a.tenantId, conversationId: a.conversationId, role: 'bot', text: 'scoped', replyTo: undefined, clientMessageId: 'scope-1' });
    expect(created).to.equal(true);
    expect(await single('messages').pluck('id')).to.deep.equal([]);
    expect(await withTenant(single, a.tenantId, (trx) => trx('messages').pluck('id'))).to.deep.equal([message.messageId]);
    expect(await withTenant(single, b.tenantId, (trx) => trx('messages').pluck('id'))).to.deep.equal([]);
    const again = await storeMessage(single, keys.columnRing, { tenantId: a.tenantId, conversationId: a.conversationId, role: 'bot', text: 'scoped again', clientMessageId: 'scope-1' });
    expect(again).to.deep.include({ created: false });
    expect(again.message.messageId).to.equal(message.messageId);
  });

  it('a scoped INSERT is checked against its own scope: a row for another tenant is refused', async () => {
    const api = createDb({ url: testDb().url, role: API_ROLE, poolMax: 1 });
    try {
      // The row claims tenant B while the INSERT scopes itself to A (the scope is A's, whatever the row says).
      const scopedToA = api.raw("(CASE WHEN set_config('app.tenant_id', ?, true) IS NOT NULL THEN ?::uuid END)", [a.tenantId, b.tenantId]);
      let refused: unknown;
      await api('messages').insert({ tenant_id: scopedToA, conversation_id: b.conversationId, role: 'user', text_ciphertext: 'ct' }).then(() => undefined, (error: unknown) => (refused = error));
      expect(refused, 'row-level security must refuse the row').to.be.instanceOf(Error);
      expect(await withTenant(api, b.tenantId, (trx) => trx('messages').pluck('id'))).to.deep.equal([]);
      const stored = await api('messages').insert({ tenant_id: tenantScopeValue(api, b.tenantId), conversation_id: b.conversationId, role: 'user', text_ciphertext: 'ct' }).returning<Array<{ id: string }>>('id');
      expect(await withTenant(api, b.tenantId, (trx) => trx('messages').pluck('id'))).to.deep.equal(stored.map((row) => row.id));
    } finally {
      await api.destroy();
    }
  });

  it('app_conversation (the API\'s read before a message) shows a conversation only in its tenant, to the API role only, and its scope ends with the call', async () => {
    const api = createDb({ url: testDb().url, role: API_ROLE, poolMax: 1 });
    try {
      const read = async (tenantId: string, conversationId: string): Promise<Array<{ id: string; tenant_id: string }>> =>
        (await api.raw<{ rows: Array<{ id: string; tenant_id: string }> }>('SELECT * FROM app_conversation(?, ?)', [tenantId, conversationId]).options({ name: 'test.app_conversation' })).rows;
      expect((await read(a.tenantId, a.conversationId)).map((row) => [row.id, row.tenant_id])).to.deep.equal([[a.conversationId, a.tenantId]]);
      expect(await read(a.tenantId, b.conversationId)).to.deep.equal([]);
      expect(await read(b.tenantId, b.conversationId)).to.have.length(1);
      const [setting] = (await api.raw<{ rows: Array<{ tenant: string | null }> }>("SELECT current_setting('app.tenant_id', true) AS tenant")).rows;
      expect(setting?.tenant ?? '').to.equal('');
      expect(await api('conversations').pluck('id')).to.deep.equal([]);
      const refused = await single.raw('SELECT * FROM app_conversation(?, ?)', [a.tenantId, a.conversationId]).then(() => undefined, (error: unknown) => error);
      expect(String(refused)).to.match(/permission denied/);
    } finally {
      await api.destroy();
    }
  });

  it('app_reply_turn (the reply worker\'s read of a turn) finds the turn only in its tenant, to the reply role only', async () => {
    const { message } = await storeMessage(single, keys.columnRing, { tenantId: a.tenantId, conversationId: a.conversationId, role: 'user', text: 'turn', clientMessageId: 'turn-1' });
    const turn = async (tenantId: string): Promise<Array<{ m_id: string | null; r_id: string | null; bot_profile: unknown }>> =>
      (await single.raw<{ rows: Array<{ m_id: string | null; r_id: string | null; bot_profile: unknown }> }>('SELECT * FROM app_reply_turn(?, ?, ?, ?, ?, ?)', [tenantId, a.conversationId, message.messageId, null, '-1', true])).rows;
    const [own] = await turn(a.tenantId);
    expect(own?.m_id).to.equal(message.messageId);
    expect(own?.r_id).to.equal(null);
    expect(own?.bot_profile).to.deep.include({ name: 'scope-a bot' });
    expect(await turn(b.tenantId)).to.deep.equal([]);
    const api = createDb({ url: testDb().url, role: API_ROLE, poolMax: 1 });
    try {
      const refused = await api.raw('SELECT * FROM app_reply_turn(?, ?, ?, ?, ?, ?)', [a.tenantId, a.conversationId, message.messageId, null, '-1', false]).then(() => undefined, (error: unknown) => error);
      expect(String(refused)).to.match(/permission denied/);
    } finally {
      await api.destroy();
    }
  });

  it('the database refuses a message whose tenant is not its conversation\'s, even to the owner (no row-level security)', async () => {
    const refused = await testDb()
      .ownerDb('messages')
      .insert({ tenant_id: a.tenantId, conversation_id: b.conversationId, role: 'user', text_ciphertext: 'ct' })
      .then(() => undefined, (error: unknown) => error as { code?: string });
    expect(refused?.code, 'a foreign key violation').to.equal('23503');
    const [key] = (await testDb().ownerDb.raw<{ rows: Array<{ convalidated: boolean }> }>("SELECT convalidated FROM pg_constraint WHERE conname = 'messages_conversation_tenant_fkey'")).rows;
    expect(key?.convalidated, 'added NOT VALID by 016, validated by 017').to.equal(true);
    expect(await testDb().ownerDb('messages').where({ conversation_id: b.conversationId, tenant_id: a.tenantId }).pluck('id')).to.deep.equal([]);
  });

  it('a message moves its conversation\'s last activity; a bot reply within a second of it does not, a later one does', async () => {
    const activity = async (): Promise<number> => ((await testDb().ownerDb('conversations').where({ id: a.conversationId }).first<{ last_activity_at: Date }>('last_activity_at'))?.last_activity_at ?? new Date(0)).getTime();
    const store = (role: 'user' | 'bot', clientMessageId: string): ReturnType<typeof storeMessage> => storeMessage(single, keys.columnRing, { tenantId: a.tenantId, conversationId: a.conversationId, role, text: 'activity', clientMessageId });
    const visitor = await store('user', 'activity-1');
    expect(await activity()).to.equal(Date.parse(visitor.message.createdAt));
    await store('bot', 'activity-2');
    expect(await activity(), 'a reply a moment later leaves it').to.equal(Date.parse(visitor.message.createdAt));
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const late = await store('bot', 'activity-3');
    expect(await activity(), 'a reply over a second later moves it').to.equal(Date.parse(late.message.createdAt));
  });

  it('writes into the SQL text only values with nothing to escape, and refuses any other before sending', () => {
    const knex = testDb().ownerDb;
    fc.assert(
      fc.property(fc.string(), (value) => {
        let text: string;
        try {
          text = tenantScoped(a.tenantId, knex.raw('SELECT ? AS v', [value]));
        } catch (error) {
          expect(error).to.be.instanceOf(TypeError);
          return;
        }
        expect(text).to.equal(`SELECT set_config('app.tenant_id', '${a.tenantId}', true); SELECT '${value}' AS v`);
        expect(value).to.match(/^[A-Za-z0-9_.:+-]*$/);
      }),
    );
    for (const value of ["x' OR '1'='1", 'a\\b', 'two words', '$1', 'é']) expect(() => tenantScoped(a.tenantId, knex.raw('SELECT ?', [value]))).to.throw(TypeError);
    expect(() => tenantScoped('not-a-uuid', knex.raw('SELECT 1'))).to.throw(/Tenant id must be a UUID/);
    // Arrays (the audit chain's ids and pseudonyms): each element by the same rule.
    expect(inlined(knex.raw('SELECT ?::text[], ?::uuid[]', [['pseudo:ab12', 'x.y'], []]))).to.equal("SELECT ARRAY['pseudo:ab12','x.y']::text[], ARRAY[]::uuid[]");
    expect(() => inlined(knex.raw('SELECT ?::text[]', [['ok', "x' OR '1'='1"]]))).to.throw(TypeError);
  });
});
