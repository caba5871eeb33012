import { expect } from 'chai';
import type { ConversationStatusEvent } from '../../shared/chat/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, loginTokens, startTestApi, type TestApi } from '../helpers/api.js';
import { closeAllClients, connectClient, connectRefused, createBot, createConversation, postMessage, restJson, restOk, signedInUser, signOutAll, type BotSpec, type ChatClient, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { firstRun, DEMO_BOT } from '../../scripts/commands/firstRun.js';

interface ConversationView {
  id: string;
  botId: string;
  botName: string;
  channel: string;
  status: string;
  visitor: string;
  operatorId: string | null;
  lastActivityAt: string;
}

const wait = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await wait(50);
  }
}

function statusEvents(client: ChatClient): ConversationStatusEvent[] {
  const events: ConversationStatusEvent[] = [];
  client.socket.on('conversation:status', (event: ConversationStatusEvent) => events.push(event));
  return events;
}

describe('operator console API: handoff, conversations, users, widget origins', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let workers: RunningWorkers;
  let prefix: string;

  before(async () => {
    database = await createTestDatabase();
    prefix = uniqueQueuePrefix();
    api = await startTestApi(apiTestConfig(database.url), prefix);
    workers = await startWorkers(api.config, 'reply', { queuePrefix: prefix });
  });
  after(async () => {
    closeAllClients();
    await signOutAll();
    await workers.shutdown();
    await api.stop();
    await database.destroy();
  });

  async function visitorChat(rules: BotSpec['rules'] = [{ match: 'hours', reply: 'We open at 9.' }]): Promise<{ operator: SignedInUser; visitor: SignedInUser; botId: string; conversationId: string }> {
    const operator = await signedInUser(api, 'operator');
    const visitor = await signedInUser(api, 'user');
    const botId = await createBot(api.url, operator, { rules });
    const conversationId = await createConversation(api.url, visitor, botId);
    return { operator, visitor, botId, conversationId };
  }

  describe('human handoff', () => {
    it('an operator takes over: the bot stays silent, the operator writes as role operator, hand-back lets the bot answer again', async () => {
      const { operator, visitor, conversationId } = await visitorChat();
      const visitorSocket = await connectClient(api.url, { token: visitor.token });
      const visitorStatus = statusEvents(visitorSocket);
      expect(await visitorSocket.join(conversationId)).to.deep.equal({ ok: true });
      const console = await connectClient(api.url, { token: operator.token });
      const consoleStatus = statusEvents(console);

      const taken = await restOk('POST', `${api.url}/api/conversations/${conversationId}/handoff`, 200, { token: operator.token, body: {} });
      expect(taken).to.include({ status: 'operator', operatorId: operator.id, channel: 'web', visitor: 'user' });
      await until('the visitor hearing of the takeover', () => (visitorStatus.some((event) => event.status === 'operator') ? true : undefined));
      // The console's socket hears it through the tenant's staff room, without having joined the conversation.
      await until('the console hearing of the takeover', () => (consoleStatus.some((event) => event.conversationId === conversationId && event.status === 'operator') ? true : undefined));

      const during = await visitorSocket.send(conversationId, 'what are your hours?', 'during-1');
      if (!during.ok || during.messageId === undefined) throw new Error(`not accepted: ${JSON.stringify(during)}`);
      expect(await console.join(conversationId)).to.deep.equal({ ok: true });
      const answer = await console.send(conversationId, 'Hello, I am Ann from support.', 'op-1');
      expect(answer.ok).to.equal(true);
      const operatorMessage = await visitorSocket.waitForMessage((message) => message.role === 'operator');
      expect(operatorMessage.text).to.equal('Hello, I am Ann from support.');

      await restOk('DELETE', `${api.url}/api/conversations/${conversationId}/handoff`, 200, { token: operator.token });
      await until('the visitor hearing of the hand-back', () => (visitorStatus.some((event) => event.status === 'bot') ? true : undefined));
      const after = await visitorSocket.send(conversationId, 'and your hours again?', 'after-1');
      expect(after.ok).to.equal(true);
      await visitorSocket.waitForMessage((message) => message.role === 'bot' && message.text === 'We open at 9.');

      const listed = await restOk('GET', `${api.url}/api/conversations/${conversationId}/messages`, 200, { token: visitor.token });
      const roles = (listed.messages as Array<{ role: string; text: string }>).map((message) => `${message.role}:${message.text}`);
      expect(roles).to.deep.equal(['user:what are your hours?', 'operator:Hello, I am Ann from support.', 'user:and your hours again?', 'bot:We open at 9.']);
      // The message sent during the takeover never got a job: nothing can answer it later.
      expect(await api.kernel.queues.queue('bot-reply').getJob(during.messageId)).to.equal(undefined);
    });

    it('the reply worker itself honours a takeover that happened after the message was accepted', async () => {
      const { operator, visitor, conversationId } = await visitorChat();
      await workers.shutdown();
      try {
        const messageId = await postMessage(api.url, visitor.token, conversationId, 'hours please', 'queued-1');
        await restOk('POST', `${api.url}/api/conversations/${conversationId}/handoff`, 200, { token: operator.token, body: {} });
        workers = await startWorkers(api.config, 'reply', { queuePrefix: prefix });
        const job = await api.kernel.queues.queue('bot-reply').getJob(messageId);
        expect(job).to.not.equal(undefined);
        await until('the reply job to finish', async () => ((await job?.getState()) === 'completed' ? true : undefined));
        const listed = await restOk('GET', `${api.url}/api/conversations/${conversationId}/messages`, 200, { token: visitor.token });
        expect((listed.messages as Array<{ role: string }>).map((message) => message.role)).to.deep.equal(['user']);
      } finally {
        if (workers === undefined) workers = await startWorkers(api.config, 'reply', { queuePrefix: prefix });
      }
    });

    it('staff may write only in a conversation taken over (409), and nobody else at all (404)', async () => {
      const { operator, conversationId } = await visitorChat();
      const refused = await restJson('POST', `${api.url}/api/conversations/${conversationId}/messages`, { token: operator.token, body: { text: 'hi' } });
      expect(refused.status).to.equal(409);
      expect(refused.body.error).to.equal('handoff_required');
      const stranger = await signedInUser(api, 'user');
      const hidden = await restJson('POST', `${api.url}/api/conversations/${conversationId}/messages`, { token: stranger.token, body: { text: 'hi' } });
      expect(hidden.status).to.equal(404);
      const takeOver = await restJson('POST', `${api.url}/api/conversations/${conversationId}/handoff`, { token: stranger.token, body: {} });
      expect(takeOver.status).to.equal(403);
    });

    it('a visitor asks for a person: the conversation waits, is counted for the console, and the bot stays silent', async () => {
      const { operator, visitor, conversationId } = await visitorChat();
      const asked = await restOk('POST', `${api.url}/api/conversations/${conversationId}/handoff-request`, 200, { token: visitor.token, body: {} });
      expect(asked.status).to.equal('waiting');
      const page = await restOk('GET', `${api.url}/api/conversations?status=waiting`, 200, { token: operator.token });
      expect((page.conversations as ConversationView[]).map((conversation) => conversation.id)).to.include(conversationId);
      expect(page.waiting).to.be.greaterThanOrEqual(1);
      const messageId = await postMessage(api.url, visitor.token, conversationId, 'hours?', 'waiting-1');
      expect(await api.kernel.queues.queue('bot-reply').getJob(messageId)).to.equal(undefined);
      // Asking again changes nothing; an operator taking over ends the wait.
      expect((await restOk('POST', `${api.url}/api/conversations/${conversationId}/handoff-request`, 200, { token: visitor.token, body: {} })).status).to.equal('waiting');
      expect((await restOk('POST', `${api.url}/api/conversations/${conversationId}/handoff`, 200, { token: operator.token, body: {} })).status).to.equal('operator');
      expect((await restOk('POST', `${api.url}/api/conversations/${conversationId}/handoff-request`, 200, { token: visitor.token, body: {} })).status).to.equal('operator');
    });

    it('a rule marked handoff answers and puts the conversation in the waiting list', async () => {
      const { operator, visitor, conversationId } = await visitorChat([{ match: 'human', reply: 'A person will join you.', handoff: true }]);
      const visitorSocket = await connectClient(api.url, { token: visitor.token });
      const events = statusEvents(visitorSocket);
      await visitorSocket.join(conversationId);
      await visitorSocket.send(conversationId, 'I want a human please', 'h-1');
      await visitorSocket.waitForMessage((message) => message.role === 'bot' && message.text === 'A person will join you.');
      await until('the waiting status', () => (events.some((event) => event.status === 'waiting') ? true : undefined));
      const view = await restOk('GET', `${api.url}/api/conversations/${conversationId}`, 200, { token: operator.token });
      expect(view.status).to.equal('waiting');
      const tried = await restOk('POST', `${api.url}/api/bots/${String(view.botId)}/try`, 200, { token: operator.token, body: { text: 'HUMAN!' } });
      expect(tried).to.deep.equal({ reply: 'A person will join you.', rule: 0, handoff: true });
      const missed = await restOk('POST', `${api.url}/api/bots/${String(view.botId)}/try`, 200, { token: operator.token, body: { text: 'weather' } });
      expect(missed).to.deep.equal({ reply: null, rule: null, handoff: false });
    });
  });

  describe('the conversation list', () => {
    it('lists the tenant\'s conversations newest activity first, pages by lastActivityAt, and filters by bot', async () => {
      const { operator, visitor, botId } = await visitorChat();
      const first = await createConversation(api.url, visitor, botId);
      const second = await createConversation(api.url, visitor, botId);
      await postMessage(api.url, visitor.token, first, 'hours', 'activity-1');
      const page = await restOk('GET', `${api.url}/api/conversations?botId=${botId}`, 200, { token: operator.token });
      const ids = (page.conversations as ConversationView[]).map((conversation) => conversation.id);
      expect(ids.indexOf(first)).to.be.lessThan(ids.indexOf(second));
      const top = (page.conversations as ConversationView[])[0];
      const next = await restOk('GET', `${api.url}/api/conversations?botId=${botId}&limit=1&before=${encodeURIComponent(String(top?.lastActivityAt))}`, 200, { token: operator.token });
      expect((next.conversations as ConversationView[]).map((conversation) => conversation.id)).to.not.include(top?.id);
      const bad = await restJson('GET', `${api.url}/api/conversations?status=closed`, { token: operator.token });
      expect(bad.status).to.equal(400);
      expect(bad.body.field).to.equal('status');
    });

    it('shows a user none of it (403) and another tenant\'s operator nothing of this one (404)', async () => {
      const { visitor, conversationId } = await visitorChat();
      expect((await restJson('GET', `${api.url}/api/conversations`, { token: visitor.token })).status).to.equal(403);
      const other = await signedInUser(api, 'operator', 'tenant-b');
      const page = await restOk('GET', `${api.url}/api/conversations`, 200, { token: other.token });
      expect((page.conversations as ConversationView[]).map((conversation) => conversation.id)).to.not.include(conversationId);
      for (const [method, path] of [
        ['GET', `/api/conversations/${conversationId}`],
        ['POST', `/api/conversations/${conversationId}/handoff`],
        ['DELETE', `/api/conversations/${conversationId}/handoff`],
        ['GET', `/api/conversations/${conversationId}/messages`],
      ] as const) {
        const reply = await restJson(method, `${api.url}${path}`, { token: other.token, ...(method === 'POST' ? { body: {} } : {}) });
        expect(reply.status, `${method} ${path}`).to.equal(404);
      }
      const otherSocket = await connectClient(api.url, { token: other.token });
      expect(await otherSocket.join(conversationId)).to.deep.equal({ ok: false, error: 'not_found' });
    });
  });

  describe('users (admin)', () => {
    it('lists the tenant\'s accounts for admins only', async () => {
      const admin = await signedInUser(api, 'admin', 'tenant-users');
      const operator = await signedInUser(api, 'operator', 'tenant-users');
      await signedInUser(api, 'admin', 'tenant-elsewhere');
      const listed = await restOk('GET', `${api.url}/api/users`, 200, { token: admin.token });
      const users = listed.users as Array<{ id: string; email: string; role: string; mfa: boolean; disabled: boolean; mustChangePassword: boolean }>;
      expect(users.map((user) => user.email)).to.have.members([admin.email, operator.email]);
      expect(users.find((user) => user.id === operator.id)).to.include({ role: 'operator', mfa: false, disabled: false, mustChangePassword: false });
      expect((await restJson('GET', `${api.url}/api/users`, { token: operator.token })).status).to.equal(403);
    });

    it('invites an account that must change its one-time password', async () => {
      const admin = await signedInUser(api, 'admin', 'tenant-invite');
      const invited = await restOk('POST', `${api.url}/api/users`, 201, { token: admin.token, body: { email: 'invitee@example.test', role: 'operator' } });
      const listed = await restOk('GET', `${api.url}/api/users`, 200, { token: admin.token });
      expect((listed.users as Array<{ id: string; mustChangePassword: boolean }>).find((user) => user.id === invited.id)?.mustChangePassword).to.equal(true);
    });

    it('a role change or a disable ends the account\'s sessions and sockets at once; a disabled account cannot log in', async () => {
      const admin = await signedInUser(api, 'admin', 'tenant-roles');
      const member = await signedInUser(api, 'user', 'tenant-roles');
      const socket = await connectClient(api.url, { token: member.token });
      const promoted = await restOk('PATCH', `${api.url}/api/users/${member.id}`, 200, { token: admin.token, body: { role: 'operator' } });
      expect(promoted.role).to.equal('operator');
      await socket.waitForDisconnect(5000);
      expect((await restJson('GET', `${api.url}/api/me`, { token: member.token })).status).to.equal(401);
      const again = await loginTokens(api, member);
      const me = await restOk('GET', `${api.url}/api/me`, 200, { token: again.accessToken });
      expect(me.roles).to.deep.equal(['operator']);

      await restOk('PATCH', `${api.url}/api/users/${member.id}`, 200, { token: admin.token, body: { disabled: true } });
      expect((await restJson('GET', `${api.url}/api/me`, { token: again.accessToken })).status).to.equal(401);
      const login = await restJson('POST', `${api.url}/auth/login`, { body: { email: member.email, password: member.password } });
      expect(login.status).to.equal(401);
      await restOk('PATCH', `${api.url}/api/users/${member.id}`, 200, { token: admin.token, body: { disabled: false } });
      await loginTokens(api, member);
    });

    it('ends every session of an account on request, and refuses changes to oneself and to other tenants\' accounts', async () => {
      const admin = await signedInUser(api, 'admin', 'tenant-sessions');
      const member = await signedInUser(api, 'user', 'tenant-sessions');
      const socket = await connectClient(api.url, { token: member.token });
      await restOk('DELETE', `${api.url}/api/users/${member.id}/sessions`, 204, { token: admin.token });
      await socket.waitForDisconnect(5000);
      expect((await restJson('GET', `${api.url}/api/me`, { token: member.token })).status).to.equal(401);

      const self = await restJson('PATCH', `${api.url}/api/users/${admin.id}`, { token: admin.token, body: { role: 'user' } });
      expect(self.status).to.equal(409);
      expect(self.body.error).to.equal('cannot_modify_self');
      const stranger = await signedInUser(api, 'user', 'tenant-strangers');
      expect((await restJson('PATCH', `${api.url}/api/users/${stranger.id}`, { token: admin.token, body: { disabled: true } })).status).to.equal(404);
      expect((await restJson('DELETE', `${api.url}/api/users/${stranger.id}/sessions`, { token: admin.token })).status).to.equal(404);
      const empty = await restJson('PATCH', `${api.url}/api/users/${member.id}`, { token: admin.token, body: {} });
      expect(empty.status).to.equal(400);
      const badRole = await restJson('PATCH', `${api.url}/api/users/${member.id}`, { token: admin.token, body: { role: 'root' } });
      expect(badRole.body.field).to.equal('role');
    });

    it('a logout ends that session\'s sockets at once', async () => {
      const member = await signedInUser(api, 'user');
      const socket = await connectClient(api.url, { token: member.token });
      await restOk('POST', `${api.url}/auth/logout`, 204, { token: member.token });
      await socket.waitForDisconnect(5000);
    });
  });

  describe('widget origins', () => {
    const shop = 'http://127.0.0.1:5123';
    const elsewhere = 'http://127.0.0.1:5999';

    it('validates allowedOrigins and answers 404 for a widget of a private bot or one without origins', async () => {
      const operator = await signedInUser(api, 'operator');
      const bad = await restJson('POST', `${api.url}/api/bots`, { token: operator.token, body: { name: 'w', allowedOrigins: ['https://shop.example.com/path'] } });
      expect(bad.status).to.equal(400);
      expect(bad.body.field).to.equal('allowedOrigins.0');
      const privateBot = await createBot(api.url, operator, { allowedOrigins: [shop] });
      expect((await fetch(`${api.url}/widget/${privateBot}`)).status).to.equal(404);
      const noOrigins = await createBot(api.url, operator, { public: true });
      expect((await fetch(`${api.url}/widget/${noOrigins}`)).status).to.equal(404);
      expect((await fetch(`${api.url}/widget/not-a-uuid`)).status).to.equal(404);
    });

    it('frames the widget for exactly the bot\'s origins, and serves widget.js to other origins', async () => {
      const operator = await signedInUser(api, 'operator');
      const botId = await createBot(api.url, operator, { public: true, allowedOrigins: [shop, 'https://shop.example.com'] });
      const frame = await fetch(`${api.url}/widget/${botId}`);
      expect(frame.status).to.equal(200);
      const policy = frame.headers.get('content-security-policy') ?? '';
      expect(policy).to.match(/frame-ancestors http:\/\/127\.0\.0\.1:5123 https:\/\/shop\.example\.com$/);
      expect(policy).to.include("script-src 'self'");
      expect(frame.headers.get('x-frame-options')).to.equal(null);
      const script = await fetch(`${api.url}/widget.js`);
      expect(script.status).to.equal(200);
      expect(script.headers.get('cross-origin-resource-policy')).to.equal('cross-origin');
      // Every other page keeps refusing to be framed.
      expect((await fetch(`${api.url}/`)).headers.get('content-security-policy')).to.include("frame-ancestors 'none'");
    });

    it('gives CORS (without credentials) and a socket to a listed origin with that bot\'s guest token only', async () => {
      const operator = await signedInUser(api, 'operator');
      const botId = await createBot(api.url, operator, { public: true, allowedOrigins: [shop], rules: [{ match: 'hours', reply: 'We open at 9.' }] });
      const otherBot = await createBot(api.url, operator, { public: true, allowedOrigins: [elsewhere] });
      const preflight = await fetch(`${api.url}/api/bots/${botId}/guest-token`, { method: 'OPTIONS', headers: { origin: shop, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
      expect(preflight.headers.get('access-control-allow-origin')).to.equal(shop);
      expect(preflight.headers.get('access-control-allow-credentials')).to.equal(null);
      const refusedPreflight = await fetch(`${api.url}/api/bots/${otherBot}/guest-token`, { method: 'OPTIONS', headers: { origin: shop, 'access-control-request-method': 'POST' } });
      expect(refusedPreflight.headers.get('access-control-allow-origin')).to.equal(null);

      const guest = await fetch(`${api.url}/api/bots/${botId}/guest-token`, { method: 'POST', headers: { origin: shop, 'content-type': 'application/json' }, body: '{}' });
      expect(guest.headers.get('access-control-allow-origin')).to.equal(shop);
      const { token, conversationId } = (await guest.json()) as { token: string; conversationId: string };
      const visitor = await connectClient(api.url, { token, extraHeaders: { origin: shop } });
      expect(await visitor.join(conversationId)).to.deep.equal({ ok: true });
      await visitor.send(conversationId, 'hours?', 'w-1');
      await visitor.waitForMessage((message) => message.role === 'bot' && message.text === 'We open at 9.');

      const otherGuest = await restOk('POST', `${api.url}/api/bots/${otherBot}/guest-token`, 200, { body: {} });
      const wrongBot = await connectRefused(api.url, { token: String(otherGuest.token), extraHeaders: { origin: shop } });
      expect(wrongBot.message).to.equal('origin_not_allowed');
      const staffFromWidget = await connectRefused(api.url, { token: operator.token, extraHeaders: { origin: shop } });
      expect(staffFromWidget.message).to.equal('origin_not_allowed');
      const unknown = await connectRefused(api.url, { token, extraHeaders: { origin: 'http://127.0.0.1:6111' } });
      expect(unknown.message).to.not.equal('');
    });
  });

  describe('first run', () => {
    it('creates the bootstrap admin and a public demo bot on an empty database, and nothing on the next start', async () => {
      const empty = await createTestDatabase();
      try {
        const config = apiTestConfig(empty.url);
        const first = await firstRun(config);
        expect(first.admin?.email).to.equal('admin@botserver.local');
        expect(first.demoBot?.guestPath).to.equal(`/?bot=${String(first.demoBot?.id)}`);
        const demo = await startTestApi(config, uniqueQueuePrefix());
        try {
          const guest = await restOk('POST', `${demo.url}/api/bots/${String(first.demoBot?.id)}/guest-token`, 200, { body: {} });
          const greeting = await restOk('GET', `${demo.url}/api/conversations/${String(guest.conversationId)}/messages`, 200, { token: String(guest.token) });
          expect((greeting.messages as Array<{ text: string }>)[0]?.text).to.equal(DEMO_BOT.greeting);
        } finally {
          await demo.stop();
        }
        expect(await firstRun(config)).to.deep.equal({});
      } finally {
        await empty.destroy();
      }
    });
  });
});
