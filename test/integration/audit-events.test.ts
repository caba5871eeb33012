import { randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Knex } from 'knex';
import { io as connect, type Socket } from 'socket.io-client';
import { AUDIT_EVENT_TYPES, pseudonym } from '../../shared/audit/index.js';
import { Keys } from '../../shared/keys.js';
import { QUEUE_NAMES } from '../../shared/queue/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, startTestAuditWorker, type TestApi, type TestUser } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startOidcProvider, type TestOidcProvider } from '../helpers/oidc-provider.js';
import { waitFor } from '../helpers/process.js';
import { OPERATOR_TENANT } from '../../api/routes/bullBoard.js';
import type { AuditRow } from '../../shared/audit/index.js';
import type { AuditEventView } from '../../api/routes/audit.js';


type ListedEvent = AuditEventView;

const requestIdOf = (headers: Headers): string => headers.get('x-request-id') ?? expect.fail('no x-request-id');

/** A cookie jar for one host (the API and the OIDC provider both listen on 127.0.0.1), following redirects by hand. */
class CookieJar {
  private readonly cookies = new Map<string, string>();

  async get(url: string | URL): Promise<Response> {
    const header = [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const response = await fetch(url, { redirect: 'manual', headers: header === '' ? {} : { cookie: header } });
    for (const line of response.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const name = pair.slice(0, pair.indexOf('='));
      const value = pair.slice(pair.indexOf('=') + 1);
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(line) || value === '') this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return response;
  }
}

/** An OIDC login through the real local provider, to the API's final redirect to `/`; returns the callback's request id. */
async function oidcLogin(api: TestApi): Promise<string> {
  const jar = new CookieJar();
  let url = new URL(`${api.url}/auth/oidc/login`);
  for (let hop = 0; hop < 15; hop += 1) {
    const response = await jar.get(url);
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null) throw new Error(`OIDC flow stopped at ${url.pathname} with ${response.status}`);
    if (url.pathname === '/auth/oidc/callback') {
      expect(location).to.equal('/');
      return requestIdOf(response.headers);
    }
    url = new URL(location, url);
  }
  throw new Error('the OIDC flow never came back to the API');
}

describe('audit: every catalogue event comes from its action; GET /api/audit and /api/audit/verify', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let provider: TestOidcProvider;
  let api: TestApi;
  let sampledApi: TestApi;
  let workers: RunningWorkers[] = [];
  let keys: Keys;
  let admin: TestUser;
  let member: TestUser;
  let adminAuth: Record<string, string>;
  let memberToken: string;
  let botId: string;
  let conversationId: string;
  let otherAdmin: TestUser;
  const sockets: Socket[] = [];
  /** Every password and token used in the suite: none may appear in any audit row. */
  const secrets: string[] = [];

  const owner = (): Knex => database.ownerDb;

  /** The event of `type` that the request `requestId` produced, once the audit worker has written it. */
  async function eventOf(requestId: string, type: string): Promise<AuditRow> {
    return waitFor(async () => (await owner()('audit_events').where({ request_id: requestId, type }).first<AuditRow | undefined>()) ?? false, 15_000);
  }

  async function eventWhere(type: string, where: (query: Knex.QueryBuilder) => Knex.QueryBuilder): Promise<AuditRow> {
    return waitFor(async () => (await where(owner()('audit_events').where({ type })).first<AuditRow | undefined>()) ?? false, 15_000);
  }

  async function signIn(account: TestUser): Promise<{ accessToken: string; refreshToken: string }> {
    const tokens = await loginTokens(api, account);
    secrets.push(tokens.accessToken, tokens.refreshToken);
    return tokens;
  }

  async function newUser(role: 'admin' | 'operator' | 'user', tenant = 'acme'): Promise<TestUser> {
    const created = await createTestUser(api.config, { role, tenant });
    secrets.push(created.password);
    return created;
  }

  /** Resolves once the audit queue has nothing waiting or running (every recorded event is in the chain). */
  async function auditDrained(): Promise<void> {
    await waitFor(async () => {
      const counts = await api.kernel.queues.queue('audit').getJobCounts('waiting', 'active', 'delayed', 'prioritized');
      return Object.values(counts).every((count) => count === 0);
    }, 20_000);
  }

  before(async () => {
    database = await createTestDatabase();
    provider = await startOidcProvider();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, {
      LOG_LEVEL: 'error',
      BOTSERVER_MAX_LOGIN_ATTEMPTS: '3',
      ZITADEL_DOMAIN: provider.issuer,
      ZITADEL_CLIENT_ID: provider.clientId,
      ZITADEL_CLIENT_SECRET: provider.clientSecret,
    });
    keys = new Keys(config.secrets);
    api = await startTestApi(config, prefix);
    provider.allowRedirectUri(`${api.url}/auth/oidc/callback`);
    // A second API process with the same keys, database and queues, recording every request as api.call.
    sampledApi = await startTestApi({ ...config, auditApiSampleRate: 1 }, prefix);
    workers = [await startTestAuditWorker(config, prefix), await startWorkers(config, 'reply', { queuePrefix: prefix })];

    admin = await newUser('admin');
    member = await newUser('user');
    otherAdmin = await newUser('admin', 'globex');
    adminAuth = { authorization: `Bearer ${(await signIn(admin)).accessToken}` };
    memberToken = (await signIn(member)).accessToken;
    const bot = await postJson(`${api.url}/api/bots`, { name: 'Audited', rules: [{ match: 'hello', reply: 'Hi there.' }] }, adminAuth);
    expect(bot.status).to.equal(201);
    botId = String(bot.body.id);
    const conversation = await postJson(`${api.url}/api/bots/${botId}/conversations`, {}, { authorization: `Bearer ${memberToken}` });
    expect(conversation.status).to.equal(201);
    conversationId = String(conversation.body.id);
  });

  after(async () => {
    for (const socket of sockets) socket.disconnect();
    await sampledApi?.stop();
    const prefix = api?.kernel.queues.prefix;
    await api?.stop();
    for (const running of workers) await running.shutdown();
    if (prefix !== undefined) {
      const redis = new Redis(api.config.redisUrl, { maxRetriesPerRequest: null });
      for (const name of QUEUE_NAMES) {
        const queue = new Queue(name, { connection: redis, prefix });
        await queue.obliterate({ force: true });
        await queue.close();
      }
      redis.disconnect();
    }
    await provider?.stop();
    await database?.destroy();
    keys?.zeroize();
  });

  describe('the catalogue', () => {
    it('auth.login.success: a password login, with actor, tenant, IP and request id', async () => {
      const result = await postJson(`${api.url}/auth/login`, { email: member.email, password: member.password });
      expect(result.status).to.equal(200);
      secrets.push(String(result.body.accessToken), String(result.body.refreshToken));
      const event = await eventOf(requestIdOf(result.headers), 'auth.login.success');
      expect(event).to.include({ actor: member.id, tenant_id: member.tenantId, outcome: 'success' });
      expect(event.ip).to.match(/127\.0\.0\.1$/);
      expect(event.details).to.include({ method: 'password' });
    });

    it('auth.login.failure: a wrong password (and an unknown e-mail, without actor or tenant)', async () => {
      const wrong = await postJson(`${api.url}/auth/login`, { email: member.email, password: 'not-the-password' });
      expect(wrong.status).to.equal(401);
      const event = await eventOf(requestIdOf(wrong.headers), 'auth.login.failure');
      expect(event).to.include({ actor: member.id, tenant_id: member.tenantId, outcome: 'failure' });
      expect(event.details).to.include({ reason: 'bad_credentials' });
      const unknown = await postJson(`${api.url}/auth/login`, { email: `nobody-${randomUUID()}@example.test`, password: 'whatever-it-is' });
      expect(unknown.status).to.equal(401);
      expect(await eventOf(requestIdOf(unknown.headers), 'auth.login.failure')).to.include({ actor: null, tenant_id: null });
      // Reset the member's failure counter for the tests below.
      await signIn(member);
    });

    it('auth.lockout: the BOTSERVER_MAX_LOGIN_ATTEMPTS-th failure locks the account', async () => {
      const victim = await newUser('user');
      let last: Awaited<ReturnType<typeof postJson>> | undefined;
      for (let attempt = 0; attempt < 3; attempt += 1) last = await postJson(`${api.url}/auth/login`, { email: victim.email, password: `wrong-${attempt}` });
      expect(last?.status).to.equal(423);
      const event = await eventOf(requestIdOf(last?.headers ?? new Headers()), 'auth.lockout');
      expect(event).to.include({ actor: victim.id, tenant_id: victim.tenantId, outcome: 'denied' });
      expect(event.details).to.include({ failures: 3 });
    });

    it('auth.logout', async () => {
      const { accessToken } = await signIn(member);
      const response = await fetch(`${api.url}/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${accessToken}` } });
      expect(response.status).to.equal(204);
      expect(await eventOf(requestIdOf(response.headers), 'auth.logout')).to.include({ actor: member.id, tenant_id: member.tenantId, outcome: 'success' });
    });

    it('auth.token.reuse: a spent refresh token presented again', async () => {
      const { refreshToken } = await signIn(member);
      const first = await postJson(`${api.url}/auth/refresh`, { refreshToken });
      expect(first.status).to.equal(200);
      secrets.push(String(first.body.accessToken), String(first.body.refreshToken));
      const reused = await postJson(`${api.url}/auth/refresh`, { refreshToken });
      expect(reused.status).to.equal(401);
      const event = await eventOf(requestIdOf(reused.headers), 'auth.token.reuse');
      expect(event).to.include({ actor: member.id, outcome: 'denied' });
      expect(event.details).to.include({ severity: 'critical' });
    });

    it('auth.mfa: TOTP enrolment started', async () => {
      const enrolling = await newUser('user');
      const { accessToken } = await signIn(enrolling);
      const response = await postJson(`${api.url}/auth/mfa/setup`, {}, { authorization: `Bearer ${accessToken}` });
      expect(response.status).to.equal(200);
      secrets.push(String(response.body.secret));
      const event = await eventOf(requestIdOf(response.headers), 'auth.mfa');
      expect(event).to.include({ actor: enrolling.id, outcome: 'success' });
      expect(event.details).to.deep.equal({ step: 'setup' });
    });

    it('authz.denied: a user asks for an admin route', async () => {
      const response = await postJson(`${api.url}/api/bots`, { name: 'Not mine' }, { authorization: `Bearer ${memberToken}` });
      expect(response.status).to.equal(403);
      const event = await eventOf(requestIdOf(response.headers), 'authz.denied');
      expect(event).to.include({ actor: member.id, tenant_id: member.tenantId, outcome: 'denied', target: 'POST /api/bots' });
    });

    it('data.read: a conversation read over REST (the count, never the text)', async () => {
      const response = await fetch(`${api.url}/api/conversations/${conversationId}/messages`, { headers: { authorization: `Bearer ${memberToken}` } });
      expect(response.status).to.equal(200);
      const event = await eventOf(requestIdOf(response.headers), 'data.read');
      expect(event).to.include({ actor: member.id, tenant_id: member.tenantId, outcome: 'success', target: `conversation:${conversationId}` });
      expect(event.details).to.deep.equal({ messages: 0 });
    });

    it('data.write: one event per message, over REST and over the socket, never with its text', async () => {
      const text = `hello canary-${randomBytes(6).toString('hex')}`;
      const rest = await postJson(`${api.url}/api/conversations/${conversationId}/messages`, { text }, { authorization: `Bearer ${memberToken}` });
      expect(rest.status).to.equal(202);
      const restEvent = await eventOf(requestIdOf(rest.headers), 'data.write');
      expect(restEvent).to.include({ actor: member.id, tenant_id: member.tenantId, outcome: 'success', target: `message:${String(rest.body.messageId)}` });
      expect(restEvent.details).to.deep.equal({ conversationId, via: 'rest' });

      const socket = connect(api.url, { auth: { token: memberToken }, transports: ['websocket'] });
      sockets.push(socket);
      const sent = (await socket.timeout(5000).emitWithAck('message:send', { conversationId, text, clientMessageId: 'audit-1' })) as { ok: boolean; messageId: string };
      expect(sent.ok).to.equal(true);
      const socketEvent = await eventWhere('data.write', (query) => query.where({ target: `message:${sent.messageId}` }));
      expect(socketEvent).to.include({ actor: member.id, tenant_id: member.tenantId });
      expect(socketEvent.details).to.deep.equal({ conversationId, via: 'socket' });
      // The same clientMessageId again is the same message: no second event.
      const again = (await socket.timeout(5000).emitWithAck('message:send', { conversationId, text, clientMessageId: 'audit-1' })) as { messageId: string };
      expect(again.messageId).to.equal(sent.messageId);
      await auditDrained();
      expect(await owner()('audit_events').where({ type: 'data.write', target: `message:${sent.messageId}` })).to.have.length(1);
      const rows = await owner()('audit_events').select<Array<Pick<AuditRow, 'details' | 'target'>>>('details', 'target');
      expect(JSON.stringify(rows)).to.not.include(text);
    });

    it('data.export: GET /api/me/export', async () => {
      const response = await fetch(`${api.url}/api/me/export`, { headers: { authorization: `Bearer ${memberToken}` } });
      expect(response.status).to.equal(200);
      const event = await eventOf(requestIdOf(response.headers), 'data.export');
      expect(event).to.include({ actor: member.id, tenant_id: member.tenantId, outcome: 'success', target: `user:${member.id}` });
      expect(event.details).to.include({ conversations: 1 });
    });

    it('data.erase: DELETE /api/me, recorded under the keyed pseudonym', async () => {
      const leaving = await newUser('user');
      const { accessToken } = await signIn(leaving);
      const response = await fetch(`${api.url}/api/me`, { method: 'DELETE', headers: { authorization: `Bearer ${accessToken}` } });
      expect(response.status).to.equal(202);
      const subject = pseudonym(keys.pseudonymKey, leaving.id);
      const event = await eventOf(requestIdOf(response.headers), 'data.erase');
      expect(event).to.include({ actor: subject, tenant_id: leaving.tenantId, outcome: 'success', target: subject });
      expect(event.ip).to.match(/^pseudo:[0-9a-f]{32}$/);
      expect(event.details).to.include({ subject, scope: 'self' });
    });

    it('config.change: a user created, a bot created, changed and deleted', async () => {
      const created = await postJson(`${api.url}/api/users`, { email: `new-${randomUUID()}@example.test`, role: 'operator' }, adminAuth);
      expect(created.status).to.equal(201);
      secrets.push(String(created.body.password));
      const userEvent = await eventOf(requestIdOf(created.headers), 'config.change');
      expect(userEvent).to.include({ actor: admin.id, tenant_id: admin.tenantId, target: `user:${String(created.body.id)}` });
      expect(userEvent.details).to.deep.equal({ change: 'user_created', role: 'operator' });

      const bot = await postJson(`${api.url}/api/bots`, { name: 'Short-lived' }, adminAuth);
      expect((await eventOf(requestIdOf(bot.headers), 'config.change')).details).to.deep.equal({ change: 'bot_created' });
      const patched = await fetch(`${api.url}/api/bots/${String(bot.body.id)}`, { method: 'PATCH', headers: { ...adminAuth, 'content-type': 'application/json' }, body: JSON.stringify({ public: true }) });
      expect(patched.status).to.equal(200);
      expect((await eventOf(requestIdOf(patched.headers), 'config.change')).details).to.deep.equal({ change: 'bot_updated', fields: ['public'] });
      const deleted = await fetch(`${api.url}/api/bots/${String(bot.body.id)}`, { method: 'DELETE', headers: adminAuth });
      expect(deleted.status).to.equal(204);
      expect(await eventOf(requestIdOf(deleted.headers), 'config.change')).to.include({ target: `bot:${String(bot.body.id)}` });
    });

    it('config.change: roles granted, then changed, by the identity provider (OIDC login)', async () => {
      const person = { sub: `sub-${randomUUID()}`, email: `oidc-${randomUUID()}@example.test`, emailVerified: true };
      provider.setAccount({ ...person, roles: ['operator'] });
      const first = await eventOf(await oidcLogin(api), 'config.change');
      expect(first.details).to.deep.equal({ change: 'user_created', source: 'oidc', roles: ['operator'] });
      const userId = String(first.actor);
      expect(first.target).to.equal(`user:${userId}`);

      provider.setAccount({ ...person, roles: ['user', 'admin'] });
      const second = await eventOf(await oidcLogin(api), 'config.change');
      expect(second).to.include({ actor: userId, target: `user:${userId}`, outcome: 'success' });
      expect(second.details).to.deep.equal({ change: 'roles_changed', source: 'oidc', from: ['operator'], to: ['admin', 'user'] });

      const unchanged = await oidcLogin(api);
      await eventOf(unchanged, 'auth.login.success');
      await auditDrained();
      expect(await owner()('audit_events').where({ request_id: unchanged, type: 'config.change' }), 'same roles: no change recorded').to.have.length(0);
    });

    it('admin.action: a failed job retried through Bull Board', async () => {
      const job = await api.kernel.queues.enqueue('bot-reply', 'reply', { tenantId: admin.tenantId, conversationId: randomUUID(), messageId: randomUUID() });
      await waitFor(async () => (await job.getState()) === 'failed', 15_000);
      // Bull Board belongs to the admins of the operator tenant.
      const operator = await newUser('admin', OPERATOR_TENANT);
      const operatorAuth = { authorization: `Bearer ${(await signIn(operator)).accessToken}` };
      const response = await fetch(`${api.url}/admin/queues/api/queues/bot-reply/${String(job.id)}/retry`, { method: 'PUT', headers: operatorAuth });
      expect(response.status).to.be.within(200, 299);
      const event = await eventOf(requestIdOf(response.headers), 'admin.action');
      expect(event).to.include({ actor: operator.id, tenant_id: operator.tenantId, outcome: 'success', target: `queue:bot-reply:job:${String(job.id)}` });
      expect(event.details).to.include({ tool: 'bull-board', action: 'retry', queue: 'bot-reply', jobId: String(job.id) });
    });

    it('api.call: with BOTSERVER_AUDIT_API_SAMPLE_RATE=1 every request (route pattern, status, duration); with 0 none', async () => {
      const sampled = await fetch(`${sampledApi.url}/api/conversations/${conversationId}/messages`, { headers: { authorization: `Bearer ${memberToken}` } });
      expect(sampled.status).to.equal(200);
      const event = await eventOf(requestIdOf(sampled.headers), 'api.call');
      expect(event).to.include({ actor: member.id, tenant_id: member.tenantId, outcome: 'success', target: 'GET /api/conversations/:id/messages' });
      expect(event.details).to.include({ method: 'GET', route: '/api/conversations/:id/messages', status: 200, sampleRate: 1 });
      expect(event.details.durationMs).to.be.a('number').and.to.be.at.least(0);

      const refused = await fetch(`${sampledApi.url}/api/bots/${botId}`, { headers: { authorization: `Bearer ${memberToken}` } });
      expect(refused.status).to.equal(403);
      expect(await eventOf(requestIdOf(refused.headers), 'api.call')).to.include({ outcome: 'denied', target: 'GET /api/bots/:id' });

      const unsampled = await fetch(`${api.url}/api/conversations/${conversationId}/messages`, { headers: { authorization: `Bearer ${memberToken}` } });
      await eventOf(requestIdOf(unsampled.headers), 'data.read');
      await auditDrained();
      expect(await owner()('audit_events').where({ request_id: requestIdOf(unsampled.headers), type: 'api.call' })).to.have.length(0);
    });

    it('security.violation: a socket that keeps sending invalid events is disconnected', async () => {
      const socket = connect(api.url, { auth: { token: memberToken }, transports: ['websocket'] });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      const disconnected = new Promise<void>((resolve) => socket.once('disconnect', () => resolve()));
      for (let strike = 0; strike < 5; strike += 1) socket.emit('message:send', { nonsense: strike });
      await disconnected;
      const event = await eventWhere('security.violation', (query) => query.where({ actor: member.id }));
      expect(event).to.include({ tenant_id: member.tenantId, outcome: 'denied' });
      expect(event.details).to.deep.equal({ reason: 'invalid_events', channel: 'socket' });
    });

    it('every type of the catalogue has been produced, and no audit row holds a password or token', async () => {
      await auditDrained();
      const types = await owner()('audit_events').distinct('type').pluck<string[]>('type');
      expect(types).to.have.members([...AUDIT_EVENT_TYPES]);
      const everything = JSON.stringify(await owner()('audit_events').select('*'));
      for (const secret of secrets) expect(everything.includes(secret), 'a secret in the audit trail').to.equal(false);
    });
  });

  describe('GET /api/audit (admins, their tenant only)', () => {
    let tenantRows: AuditRow[];

    before(async () => {
      // The other tenant's admin makes events of their own.
      await signIn(otherAdmin);
      await auditDrained();
      tenantRows = (await owner()('audit_events').where({ tenant_id: admin.tenantId }).orderBy('id', 'desc')) as AuditRow[];
    });

    async function list(query: string, auth = adminAuth): Promise<{ status: number; body: { events?: ListedEvent[]; error?: string; field?: string } }> {
      const response = await fetch(`${api.url}/api/audit${query}`, { headers: auth });
      return { status: response.status, body: (await response.json()) as { events?: ListedEvent[]; error?: string; field?: string } };
    }

    it("lists the tenant's events newest first, in the contract's shape, and nothing of another tenant or of none", async () => {
      const { status, body } = await list('?limit=500');
      expect(status).to.equal(200);
      const events = body.events ?? [];
      expect(events.map((event) => event.id)).to.deep.equal(tenantRows.slice(0, 500).map((row) => String(row.id)));
      const first = events[0];
      expect(first).to.have.all.keys('id', 'time', 'type', 'actor', 'target', 'outcome', 'ip', 'requestId', 'details');
      const ids = events.map((event) => Number(event.id));
      expect(ids).to.deep.equal([...ids].sort((a, b) => b - a));
      const foreign = await owner()('audit_events').whereNot({ tenant_id: admin.tenantId }).orWhereNull('tenant_id').pluck<string[]>('id');
      expect(foreign.length, 'the suite made events of another tenant and without tenant').to.be.greaterThan(0);
      expect(ids.filter((id) => foreign.map(Number).includes(id))).to.deep.equal([]);
    });

    it('filters by exact type and by a prefix ending with a dot', async () => {
      const exact = await list('?type=auth.logout');
      expect(exact.body.events?.map((event) => event.type)).to.deep.equal(tenantRows.filter((row) => row.type === 'auth.logout').map(() => 'auth.logout'));
      expect(exact.body.events).to.have.length.greaterThan(0);
      const prefix = await list('?type=auth.&limit=500');
      const types = new Set(prefix.body.events?.map((event) => event.type));
      expect([...types].every((type) => type.startsWith('auth.'))).to.equal(true);
      expect(types).to.include.members(['auth.login.success', 'auth.login.failure', 'auth.lockout', 'auth.logout']);
      expect(prefix.body.events).to.have.length(tenantRows.filter((row) => row.type.startsWith('auth.')).length);
      expect((await list('?type=auth')).body.events, 'no dot: an exact type, which does not exist').to.deep.equal([]);
    });

    it('filters by actor, by since, and limits', async () => {
      const byActor = await list(`?actor=${member.id}&limit=500`);
      expect(byActor.body.events?.every((event) => event.actor === member.id)).to.equal(true);
      expect(byActor.body.events).to.have.length(tenantRows.filter((row) => row.actor === member.id).length);

      const middle = tenantRows[Math.floor(tenantRows.length / 2)];
      if (middle === undefined) throw new Error('no rows');
      const since = await list(`?since=${encodeURIComponent(middle.time.toISOString())}&limit=500`);
      expect(since.body.events?.map((event) => event.id)).to.deep.equal(tenantRows.filter((row) => row.time >= middle.time).map((row) => String(row.id)));

      const limited = await list('?limit=2');
      expect(limited.body.events?.map((event) => event.id)).to.deep.equal(tenantRows.slice(0, 2).map((row) => String(row.id)));
      expect((await list('')).body.events).to.have.length(Math.min(100, tenantRows.length));
    });

    it("another tenant's admin sees only their own tenant's events", async () => {
      const { accessToken } = await signIn(otherAdmin);
      const { body } = await list('?limit=500', { authorization: `Bearer ${accessToken}` });
      const theirs = await owner()('audit_events').where({ tenant_id: otherAdmin.tenantId }).pluck<string[]>('id');
      expect(body.events?.length).to.be.greaterThan(0);
      expect(body.events?.every((event) => theirs.map(String).includes(event.id))).to.equal(true);
    });

    it('refuses a non-admin (403, audited) and an anonymous caller (401)', async () => {
      const refused = await fetch(`${api.url}/api/audit`, { headers: { authorization: `Bearer ${memberToken}` } });
      expect(refused.status).to.equal(403);
      expect(await eventOf(requestIdOf(refused.headers), 'authz.denied')).to.include({ actor: member.id, target: 'GET /api/audit' });
      expect((await fetch(`${api.url}/api/audit`)).status).to.equal(401);
      expect((await fetch(`${api.url}/api/audit/verify`, { headers: { authorization: `Bearer ${memberToken}` } })).status).to.equal(403);
    });

    it('answers 400 invalid_request naming the field of a bad query', async () => {
      const cases: Array<[string, string]> = [
        ['?limit=0', 'limit'],
        ['?limit=501', 'limit'],
        ['?limit=ten', 'limit'],
        ['?since=yesterday', 'since'],
        ['?type=AUTH', 'type'],
        ['?type=auth..login', 'type'],
        ['?colour=red', 'colour'],
      ];
      for (const [query, field] of cases) {
        const { status, body } = await list(query);
        expect(status, query).to.equal(400);
        expect(body, query).to.include({ error: 'invalid_request', field });
      }
    });
  });

  describe('POST /api/audit/verify (a job) and GET /api/audit/verify (its result)', () => {
    /** Queues a run and waits for its result (the audit worker walks the chain). */
    async function verified(body: Record<string, unknown>): Promise<Record<string, unknown>> {
      const queued = await postJson(`${api.url}/api/audit/verify`, body, adminAuth);
      expect(queued.status, JSON.stringify(queued.body)).to.equal(202);
      return waitFor(async () => {
        const response = await fetch(`${api.url}/api/audit/verify`, { headers: adminAuth });
        const run = (await response.json()) as Record<string, unknown>;
        return run.jobId === queued.body.jobId && run.state === 'done' ? run : false;
      }, 20_000);
    }

    it('reports the intact chain with the number of rows checked', async () => {
      await auditDrained();
      const [{ count } = { count: '0' }] = await owner()('audit_events').count<Array<{ count: string }>>('* as count');
      const run = await verified({});
      expect(run.ok).to.equal(true);
      // The request's own admin.action event may be appended before the walk reaches the end.
      expect(run.checked).to.be.within(Number(count), Number(count) + 1);
    });

    it('after one row is changed (as the owner, trigger dropped) a full run reports ok:false with that row', async () => {
      await auditDrained();
      const rows = await owner()('audit_events').orderBy('id').select<Array<{ id: string }>>('id');
      const index = Math.floor(rows.length / 3);
      const target = rows[index];
      if (target === undefined) throw new Error('no rows');
      await owner().raw('DROP TRIGGER audit_events_append_only ON audit_events');
      await owner()('audit_events').where({ id: target.id }).update({ details: JSON.stringify({ rewritten: true }) });
      const run = await verified({ full: true });
      expect(run).to.include({ ok: false, checked: index, firstBrokenId: String(target.id) });
    });
  });
});
