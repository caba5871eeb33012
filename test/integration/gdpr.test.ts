import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { createStorage, type ObjectStorage } from '../../adapters/storage/index.js';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { knowledgeTextAad, knowledgeTitleAad, type UserExport } from '../../api/gdpr/export.js';
import { pseudonym, verifyAuditChain } from '../../shared/audit/index.js';
import type { Config } from '../../shared/config/index.js';
import { sealString } from '../../shared/crypto/index.js';
import { API_ROLE, AUDIT_ROLE } from '../../shared/db/index.js';
import { FileStaging, storageKeyOf } from '../../shared/files/index.js';
import { Keys } from '../../shared/keys.js';
import { QUEUE_NAMES } from '../../shared/queue/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, postJson, startTestApi, type TestApi, type TestUser } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, INSUFFICIENT_PRIVILEGE, pgErrorOf, type TestDatabase } from '../helpers/db.js';
import { download, json, uploadFile, waitForStored } from '../helpers/files.js';
import { runCli, waitFor } from '../helpers/process.js';
import { emptyRedisDb } from '../helpers/redis.js';

const REDIS_SERVER = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

/** A small PDF (the type sniffer knows it by its `%PDF-` magic) whose text holds `marker`. */
function pdfWith(marker: string): Buffer {
  return Buffer.from(`%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ${marker}\ntrailer << /Root 1 0 R >>\n%%EOF\n`, 'latin1');
}


interface Participant {
  user: TestUser;
  canary: string;
  accessToken: string;
  refreshToken: string;
  cookie: string;
  conversationId: string;
  /** Uploaded through POST /api/files and stored (encrypted) by the files worker. */
  fileId: string;
  fileContent: Buffer;
  knowledgeId: string;
}

/** Every string value held in the Redis database: key names, and the values of strings, hashes, lists, sets, sorted sets, streams. */
async function redisContents(redis: Redis): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      found.push(key);
      const type = await redis.type(key);
      if (type === 'string') found.push((await redis.getBuffer(key))?.toString('latin1') ?? '');
      else if (type === 'hash') found.push(...Object.entries(await redis.hgetall(key)).flat());
      else if (type === 'list') found.push(...(await redis.lrange(key, 0, -1)));
      else if (type === 'set') found.push(...(await redis.smembers(key)));
      else if (type === 'zset') found.push(...(await redis.zrange(key, '0', '-1')));
      else if (type === 'stream') found.push(JSON.stringify(await redis.xrange(key, '-', '+')));
      else found.push(`<${type}>`);
    }
  } while (cursor !== '0');
  return found;
}

/** Rows of every table of the public schema whose whole text form contains `needle` (RLS off: it fails rather than hide rows). */
async function tablesContaining(ownerDb: Knex, needle: string): Promise<string[]> {
  return ownerDb.transaction(async (trx) => {
    await trx.raw('SET LOCAL row_security = off');
    const tables = await trx('information_schema.tables').where({ table_schema: 'public', table_type: 'BASE TABLE' }).pluck<string[]>('table_name');
    expect(tables).to.include.members(['users', 'messages', 'conversations', 'files', 'knowledge_documents', 'audit_events', 'memberships']);
    const hits: string[] = [];
    for (const table of tables) {
      const result = await trx.raw<{ rows: Array<{ n: string }> }>(`SELECT count(*) AS n FROM "${table.replaceAll('"', '""')}" t WHERE strpos(t::text, ?) > 0`, [needle]);
      if (Number(result.rows[0]?.n ?? 0) > 0) hits.push(table);
    }
    return hits;
  });
}

/** Every file under `dir` (the local store: BOTSERVER_DATA_DIR) whose bytes contain `needle`. */
function filesContaining(dir: string, needle: string): string[] {
  const hits: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) hits.push(...filesContaining(path, needle));
    else if (readFileSync(path).includes(needle)) hits.push(path);
  }
  return hits;
}

describe('GDPR: export of every datum and erasure (GET /api/me/export, DELETE /api/me)', function () {
  this.timeout(90_000);
  let database: TestDatabase;
  let config: Config;
  let api: TestApi;
  let workers: RunningWorkers[] = [];
  let keys: Keys;
  let redis: Redis;
  let redisDb: number;
  let storage: ObjectStorage;
  let botId: string;
  let a: Participant;
  let b: Participant;

  const owner = (): Knex => database.ownerDb;
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

  async function auditDrained(): Promise<void> {
    await waitFor(async () => {
      const counts = await api.kernel.queues.queue('audit').getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return Object.values(counts).every((count) => count === 0);
    }, 20_000);
  }

  async function exportOf(token: string): Promise<{ status: number; text: string; body: UserExport }> {
    const response = await fetch(`${api.url}/api/me/export`, { headers: bearer(token) });
    const text = await response.text();
    return { status: response.status, text, body: JSON.parse(text) as UserExport };
  }

  /** A user of the tenant with a conversation, messages, a file row and a knowledge document, all holding a canary. */
  async function participant(label: string): Promise<Participant> {
    const canary = `canary${label}${randomBytes(8).toString('hex')}`;
    const user = await createTestUser(config, { role: 'user', tenant: 'gdpr', email: `${canary}@example.test` });
    const login = await postJson(`${api.url}/auth/login`, { email: user.email, password: user.password });
    expect(login.status).to.equal(200);
    // One refresh, so a spent refresh token exists too.
    const refreshed = await postJson(`${api.url}/auth/refresh`, { refreshToken: String(login.body.refreshToken) });
    expect(refreshed.status).to.equal(200);
    const cookieLogin = await postJson(`${api.url}/auth/login?cookie=1`, { email: user.email, password: user.password });
    const cookie = cookieLogin.headers
      .getSetCookie()
      .map((line) => line.split(';')[0] ?? '')
      .filter((pair) => pair.startsWith('botserver_'))
      .join('; ');
    const accessToken = String(refreshed.body.accessToken);
    const conversation = await postJson(`${api.url}/api/bots/${botId}/conversations`, {}, bearer(accessToken));
    expect(conversation.status).to.equal(201);
    const conversationId = String(conversation.body.id);
    for (const text of [`ping ${canary} one`, `my secret is ${canary} two`]) {
      const sent = await postJson(`${api.url}/api/conversations/${conversationId}/messages`, { text }, bearer(accessToken));
      expect(sent.status).to.equal(202);
    }
    // Both answered by the reply worker (greeting + 2 messages + 2 replies).
    await waitFor(async () => (await owner()('messages').where({ conversation_id: conversationId })).length === 5, 15_000);

    const fileContent = pdfWith(canary);
    const upload = await uploadFile(api.url, accessToken, `${canary}-report.pdf`, fileContent);
    expect(upload.status, upload.body.toString('utf8')).to.equal(202);
    const fileId = String(json(upload).id);
    expect(await waitForStored(api.url, accessToken, fileId)).to.include({ status: 'stored', type: 'application/pdf' });
    const knowledgeId = randomUUID();
    await owner()('knowledge_documents').insert({
      id: knowledgeId,
      tenant_id: user.tenantId,
      bot_id: botId,
      owner_id: user.id,
      title_ciphertext: sealString(keys.columnRing, `${canary} title`, knowledgeTitleAad(knowledgeId)),
      text_ciphertext: sealString(keys.columnRing, `${canary} body text`, knowledgeTextAad(knowledgeId)),
    });
    return { user, canary, accessToken, refreshToken: String(refreshed.body.refreshToken), cookie, conversationId, fileId, fileContent, knowledgeId };
  }

  before(async () => {
    database = await createTestDatabase();
    redisDb = await emptyRedisDb();
    const redisUrl = new URL(REDIS_SERVER.toString());
    redisUrl.pathname = `/${redisDb}`;
    config = apiTestConfig(database.url, { REDIS_URL: redisUrl.toString(), LOG_LEVEL: 'error' });
    keys = new Keys(config.secrets);
    redis = new Redis(config.redisUrl);
    storage = createStorage(config);
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = [await startWorkers(config, 'all', { queuePrefix: prefix })];
    const admin = await createTestUser(config, { role: 'admin', tenant: 'gdpr' });
    const adminLogin = await postJson(`${api.url}/auth/login`, { email: admin.email, password: admin.password });
    const bot = await postJson(`${api.url}/api/bots`, { name: 'Keeper', greeting: 'Hello.', rules: [{ match: 'ping', reply: 'pong' }] }, bearer(String(adminLogin.body.accessToken)));
    expect(bot.status).to.equal(201);
    botId = String(bot.body.id);
    a = await participant('a');
    b = await participant('b');
  });

  after(async () => {
    for (const running of workers) await running.shutdown();
    if (api !== undefined) {
      for (const name of QUEUE_NAMES) {
        const queue = new Queue(name, { connection: redis, prefix: api.kernel.queues.prefix });
        await queue.obliterate({ force: true });
        await queue.close();
      }
      await api.stop();
    }
    if (redis !== undefined) {
      await redis.flushdb();
      redis.disconnect();
    }
    await storage?.close();
    await database?.destroy();
    keys?.zeroize();
  });

  describe('GET /api/me/export', () => {
    it("contains the caller's account, decrypted messages, files, knowledge and audit events", async () => {
      await auditDrained();
      const { status, body, text } = await exportOf(a.accessToken);
      expect(status).to.equal(200);
      expect(body.account).to.include({ id: a.user.id, email: a.user.email, tenant: 'gdpr', tenantId: a.user.tenantId, mfa: false });
      expect(body.account.roles).to.deep.equal(['user']);
      expect(body.conversations).to.have.length(1);
      const [conversation] = body.conversations;
      expect(conversation).to.include({ id: a.conversationId, botId, channel: 'web' });
      const messages = conversation?.messages ?? [];
      expect(messages.filter((message) => message.role === 'user').map((message) => message.text)).to.deep.equal([`ping ${a.canary} one`, `my secret is ${a.canary} two`]);
      expect(messages.filter((message) => message.role === 'bot').map((message) => message.text)).to.have.length(3).and.to.include.members(['Hello.', 'pong']);
      expect(messages[0]).to.have.all.keys('messageId', 'role', 'text', 'createdAt');
      expect(body.files).to.deep.equal([
        { id: a.fileId, name: `${a.canary}-report.pdf`, size: a.fileContent.length, type: 'application/pdf', status: 'stored', createdAt: body.files[0]?.createdAt, download: `/api/files/${a.fileId}/content` },
      ]);
      expect(Date.parse(body.files[0]?.createdAt ?? '')).to.be.a('number').and.not.NaN;
      // The link leads to the caller's own content, byte for byte.
      const content = await download(api.url, a.accessToken, a.fileId);
      expect(content.status).to.equal(200);
      expect(content.body.equals(a.fileContent)).to.equal(true);
      expect(body.knowledge.map(({ id, botId: bot, title, text: knowledgeText }) => ({ id, bot, title, knowledgeText }))).to.deep.equal([
        { id: a.knowledgeId, bot: botId, title: `${a.canary} title`, knowledgeText: `${a.canary} body text` },
      ]);
      expect(body.auditEvents.length).to.be.greaterThan(0);
      expect(body.auditEvents.every((event) => event.actor === a.user.id)).to.equal(true);
      expect(body.auditEvents.map((event) => event.type)).to.include.members(['auth.login.success', 'data.write']);
      expect(text).to.include(a.canary);
    });

    it("holds nothing of another user's (and the other way round)", async () => {
      const ofA = await exportOf(a.accessToken);
      for (const foreign of [b.canary, b.user.id, b.user.email, b.conversationId, b.fileId, b.knowledgeId]) expect(ofA.text).to.not.include(foreign);
      const ofB = await exportOf(b.accessToken);
      expect(ofB.text).to.include(b.canary);
      for (const foreign of [a.canary, a.user.id, a.conversationId, a.fileId, a.knowledgeId]) expect(ofB.text).to.not.include(foreign);
    });

    it('is refused without a caller', async () => {
      expect((await fetch(`${api.url}/api/me/export`)).status).to.equal(401);
      expect((await fetch(`${api.url}/api/me`, { method: 'DELETE' })).status).to.equal(401);
    });
  });

  describe('DELETE /api/me', () => {
    let needles: string[];
    let actorRowIds: string[];
    let subject: string;

    before(async () => {
      await auditDrained();
      const conversationIds = [a.conversationId];
      const ciphertexts = await owner()('messages').whereIn('conversation_id', conversationIds).pluck<string[]>('text_ciphertext');
      const account = await owner()('users').where({ id: a.user.id }).first<{ email_ciphertext: string; email_index: string }>('email_ciphertext', 'email_index');
      const file = await owner()('files').where({ id: a.fileId }).first<{ name_ciphertext: string }>('name_ciphertext');
      const knowledge = await owner()('knowledge_documents').where({ id: a.knowledgeId }).first<{ title_ciphertext: string; text_ciphertext: string }>('title_ciphertext', 'text_ciphertext');
      if (account === undefined || file === undefined || knowledge === undefined) throw new Error("A's rows are missing");
      // Plaintext canaries, A's identity, and (for thoroughness) the ciphertexts of A's rows.
      needles = [a.canary, a.user.email, a.user.id, ...ciphertexts, account.email_ciphertext, account.email_index, file.name_ciphertext, knowledge.title_ciphertext, knowledge.text_ciphertext];
      expect(ciphertexts).to.have.length(5);
      actorRowIds = await owner()('audit_events').where({ actor: a.user.id }).pluck<string[]>('id');
      expect(actorRowIds.length).to.be.greaterThan(3);
      // The searches can find what they look for: before the erasure, A is in PostgreSQL and in Redis.
      expect(await tablesContaining(owner(), a.canary)).to.deep.equal([]);
      expect(await tablesContaining(owner(), a.user.id)).to.include.members(['users', 'memberships', 'conversations', 'files', 'knowledge_documents', 'audit_events']);
      expect(await tablesContaining(owner(), ciphertexts[0] ?? '-')).to.deep.equal(['messages']);
      expect((await redisContents(redis)).some((value) => value.includes(a.user.id)), "A's sessions are in Redis").to.equal(true);
      subject = pseudonym(keys.pseudonymKey, a.user.id);
    });

    it('answers 202 at once, with events of A still on their way to the chain', async () => {
      // Events recorded right before the erasure may still be in the queue when it runs.
      const last = await postJson(`${api.url}/api/conversations/${a.conversationId}/messages`, { text: `last words ${a.canary}` }, bearer(a.accessToken));
      expect(last.status).to.equal(202);
      const response = await fetch(`${api.url}/api/me`, { method: 'DELETE', headers: bearer(a.accessToken) });
      expect(response.status).to.equal(202);
      expect(await response.json()).to.deep.equal({ status: 'erased', subject });
      await auditDrained();
      // The reply to the last message may be on its way too: let the reply queue settle.
      await waitFor(async () => {
        const counts = await api.kernel.queues.queue('bot-reply').getJobCounts('waiting', 'active', 'delayed');
        return Object.values(counts).every((count) => count === 0);
      }, 20_000);
    });

    it("deletes A's stored file object (every version) and leaves no staged copy; B's stays", async () => {
      expect(await owner()('files').where({ id: a.fileId })).to.deep.equal([]);
      expect(await storage.head(storageKeyOf(a.user.tenantId, a.fileId))).to.equal(undefined);
      const staging = new FileStaging(config.dataDir);
      expect((await staging.list()).filter((entry) => entry.fileId === a.fileId)).to.deep.equal([]);
      expect(await storage.head(storageKeyOf(b.user.tenantId, b.fileId))).to.not.equal(undefined);
    });

    it("leaves nothing of A's in any table of PostgreSQL: canaries, identity, ciphertexts", async () => {
      for (const needle of needles) expect(await tablesContaining(owner(), needle), needle.slice(0, 40)).to.deep.equal([]);
    });

    it("leaves nothing of A's in Redis (every key and value of the database) or in the data directory", async () => {
      const contents = await redisContents(redis);
      expect(contents.length).to.be.greaterThan(0);
      for (const needle of needles) expect(contents.filter((value) => value.includes(needle)), needle.slice(0, 40)).to.deep.equal([]);
      for (const needle of needles) expect(filesContaining(config.dataDir, needle)).to.deep.equal([]);
    });

    it("refuses A's password, access token, refresh token and session cookie", async () => {
      const login = await postJson(`${api.url}/auth/login`, { email: a.user.email, password: a.user.password });
      expect(login.status).to.equal(401);
      expect(login.body.error).to.equal('invalid_credentials');
      expect((await fetch(`${api.url}/api/me`, { headers: bearer(a.accessToken) })).status).to.equal(401);
      expect((await postJson(`${api.url}/auth/refresh`, { refreshToken: a.refreshToken })).status).to.equal(401);
      expect((await fetch(`${api.url}/api/me`, { headers: { cookie: a.cookie } })).status).to.equal(401);
    });

    it("the audit trail keeps A's events under the keyed pseudonym, records the erasure, and still verifies", async () => {
      const rows = await owner()('audit_events').whereIn('id', actorRowIds).select<Array<{ actor: string; ip: string | null }>>('actor', 'ip');
      expect(rows).to.have.length(actorRowIds.length);
      for (const row of rows) {
        expect(row.actor).to.equal(subject);
        if (row.ip !== null) expect(row.ip).to.match(/^pseudo:[0-9a-f]{32}$/);
      }
      // Events that reached the chain after the erasure (the last message, its api traffic) carry it too.
      const lastWrite = await owner()('audit_events').where({ type: 'data.write', actor: subject }).orderBy('id', 'desc').first<{ id: string } | undefined>('id');
      expect(Number(lastWrite?.id)).to.be.greaterThan(Math.max(...actorRowIds.map(Number)));
      expect(await owner()('audit_events').where({ target: `user:${subject}` })).to.have.length.greaterThan(0);
      // An event naming A that is recorded from now on (a retried job, a late request) is stored pseudonymised too.
      const lateTarget = `user:${a.user.id}`;
      await api.kernel.audit.record({ type: 'config.change', outcome: 'success', actor: a.user.id, ip: '198.51.100.23', target: lateTarget, requestId: 'late-event' });
      const late = await waitFor(async () => (await owner()('audit_events').where({ request_id: 'late-event' }).first<{ actor: string; ip: string; target: string } | undefined>()) ?? false, 15_000);
      expect(late).to.deep.include({ actor: subject, ip: pseudonym(keys.pseudonymKey, '198.51.100.23'), target: `user:${subject}` });
      const erase = await owner()('audit_events').where({ type: 'data.erase', actor: subject }).first<{ details: Record<string, unknown>; outcome: string } | undefined>();
      expect(erase?.outcome).to.equal('success');
      expect(erase?.details).to.include({ subject, conversations: 1, files: 1, knowledge: 1 });

      const [{ count } = { count: '0' }] = await owner()('audit_events').count<Array<{ count: string }>>('* as count');
      expect(await verifyAuditChain(owner(), { chainKey: keys.auditChainKey, pseudonymKey: keys.pseudonymKey })).to.deep.equal({ ok: true, checked: Number(count) });
      const cli = await runCli(['audit', 'verify'], {
        DATABASE_URL: database.url,
        BOTSERVER_DATA_DIR: config.dataDir,
        BOTSERVER_JWT_SECRET: config.secrets.jwtSecret,
        BOTSERVER_ENCRYPTION_KEY: config.secrets.encryptionKey,
        DATABASE_ENCRYPTION_KEY: config.secrets.databaseEncryptionKey,
      });
      expect(cli.code, cli.stderr).to.equal(0);
      expect(cli.stdout).to.equal(`audit chain intact: ${count} event(s) checked\n`);
    });

    it("leaves B's data intact", async () => {
      const login = await postJson(`${api.url}/auth/login`, { email: b.user.email, password: b.user.password });
      expect(login.status).to.equal(200);
      const { body } = await exportOf(String(login.body.accessToken));
      const content = await download(api.url, String(login.body.accessToken), b.fileId);
      expect(content.status).to.equal(200);
      expect(content.body.equals(b.fileContent)).to.equal(true);
      expect(body.conversations[0]?.messages.map((message) => message.text)).to.include(`ping ${b.canary} one`);
      expect(body.files.map((file) => file.name)).to.deep.equal([`${b.canary}-report.pdf`]);
      expect(body.knowledge.map((document) => document.title)).to.deep.equal([`${b.canary} title`]);
      expect(body.auditEvents.length).to.be.greaterThan(0);
      expect(await tablesContaining(owner(), b.canary)).to.deep.equal([]);
      expect(await tablesContaining(owner(), b.user.id)).to.include.members(['users', 'conversations', 'files', 'knowledge_documents', 'audit_events']);
    });
  });

  describe('who may rewrite an audit row (migration 007)', () => {
    const rollBack = new Error('roll back');

    /** Runs `change` in a transaction that is always rolled back; resolves with the PostgreSQL error, if any. */
    async function attempt(db: Knex, change: (trx: Knex.Transaction) => PromiseLike<unknown>): Promise<{ code: string; message: string } | undefined> {
      const outcome = await db
        .transaction(async (trx) => {
          const error = await pgErrorOf(change(trx));
          if (error === undefined) throw rollBack;
          return error;
        })
        .catch((error: unknown) => (error === rollBack ? undefined : Promise.reject(error instanceof Error ? error : new Error(String(error)))));
      return outcome;
    }

    async function rawRow(): Promise<{ id: string; actor: string; ip: string | null }> {
      const row = await owner()('audit_events').where({ actor: b.user.id }).whereNotNull('ip').first<{ id: string; actor: string; ip: string | null } | undefined>('id', 'actor', 'ip');
      if (row === undefined) throw new Error('no raw row');
      return row;
    }

    it('the api role may replace actor and ip by their pseudonyms (and nothing else)', async () => {
      const row = await rawRow();
      const api = database.dbAs(API_ROLE);
      const replaced = { actor: pseudonym(keys.pseudonymKey, row.actor), ip: pseudonym(keys.pseudonymKey, row.ip ?? '') };
      expect(await attempt(api, (trx) => trx('audit_events').where({ id: row.id }).update(replaced))).to.equal(undefined);
      for (const change of [{ details: JSON.stringify({ forged: true }) }, { hash: 'f'.repeat(64) }, { type: 'api.call' }, { outcome: 'success' }, { prev_hash: '0'.repeat(64) }]) {
        const error = await attempt(api, (trx) => trx('audit_events').where({ id: row.id }).update(change));
        expect(error?.code, JSON.stringify(change)).to.equal(INSUFFICIENT_PRIVILEGE);
        expect(error?.message).to.match(/permission denied/);
      }
      expect((await attempt(api, (trx) => trx('audit_events').where({ id: row.id }).delete()))?.code).to.equal(INSUFFICIENT_PRIVILEGE);
    });

    it('the trigger refuses any other actor, ip or target, and a second pseudonym over the first', async () => {
      const row = await rawRow();
      const api = database.dbAs(API_ROLE);
      const pseudonymous = await owner()('audit_events').where({ actor: pseudonym(keys.pseudonymKey, a.user.id) }).first<{ id: string }>('id');
      const botTarget = await owner()('audit_events').where('target', 'like', 'bot:%').first<{ id: string }>('id');
      const cases: Array<[string, string, Record<string, unknown>]> = [
        ['a raw actor', row.id, { actor: 'mallory' }],
        ['a malformed pseudonym', row.id, { actor: 'pseudo:not-hex' }],
        ['a NULL actor', row.id, { actor: null }],
        ['a raw ip', row.id, { ip: '203.0.113.66' }],
        ['a pseudonym over a pseudonym', pseudonymous?.id ?? '0', { actor: pseudonym(keys.pseudonymKey, 'someone-else') }],
        ['a user target over a bot target', botTarget?.id ?? '0', { target: `user:${pseudonym(keys.pseudonymKey, 'x')}` }],
      ];
      for (const [what, id, change] of cases) {
        const error = await attempt(api, (trx) => trx('audit_events').where({ id }).update(change));
        expect(error?.code, what).to.equal(INSUFFICIENT_PRIVILEGE);
        expect(error?.message, what).to.match(/append-only/);
      }
      // The owner has every privilege, yet the trigger holds for it too.
      const owned = await attempt(owner(), (trx) => trx('audit_events').where({ id: row.id }).update({ details: JSON.stringify({ forged: true }) }));
      expect(owned?.message).to.match(/append-only/);
    });

    it("the audit role's UPDATE and DELETE are still refused, even to a pseudonym", async () => {
      const row = await rawRow();
      const audit = database.dbAs(AUDIT_ROLE);
      for (const change of [(trx: Knex.Transaction) => trx('audit_events').where({ id: row.id }).update({ actor: pseudonym(keys.pseudonymKey, row.actor) }), (trx: Knex.Transaction) => trx('audit_events').where({ id: row.id }).delete()]) {
        const error = await attempt(audit, change);
        expect(error?.code).to.equal(INSUFFICIENT_PRIVILEGE);
        expect(error?.message).to.match(/permission denied/);
      }
    });
  });
});
