import { expect } from 'chai';
import fc from 'fast-check';
import type { Knex } from 'knex';
import { Keys } from '../../shared/keys.js';
import { storeMessage } from '../../shared/chat/index.js';
import { API_ROLE, REPLY_ROLE, createDb, inTenant, tenantScoped, tenantScopeValue, withTenant } from '../../shared/db/index.js';
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
  });
});
