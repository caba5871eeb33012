import { createPrivateKey, randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { generateKeyPair, SignJWT } from 'jose';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, startTestAuditWorker, type TestApi } from '../helpers/api.js';
import {
  closeAllClients, connectClient, connectRefused, createBot, createConversation, listConversation, postMessage, restJson, setupChat, signedInUser,
  signOutAll, type ChatSetup, type SignedInUser,
} from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/process.js';

const MAX_FRAME = 2048;
const ALLOWED_ORIGIN = 'http://localhost:8080';

interface JwtParts {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

function decodeJwt(token: string): JwtParts {
  const [header = '', payload = ''] = token.split('.');
  const decode = (part: string): Record<string, unknown> => JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
  return { header: decode(header), payload: decode(payload) };
}

/** Re-signs a token's claims (with a chosen expiry) with `key`, keeping its header (alg, kid, typ). */
async function resign(token: string, key: Parameters<SignJWT['sign']>[0], expiresAt: number): Promise<string> {
  const { header, payload } = decodeJwt(token);
  return new SignJWT({ ...payload, exp: expiresAt })
    .setProtectedHeader({ alg: 'RS256', kid: String(header.kid), typ: String(header.typ) })
    .sign(key);
}

interface AuditRow {
  type: string;
  actor: string | null;
  tenant_id: string | null;
  details: { reason?: string; channel?: string };
}

describe('chat security: Socket.IO and REST boundaries', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let workers: RunningWorkers;
  let auditWorker: RunningWorkers;
  let chat: ChatSetup;
  let publicBotId: string;
  let otherTenant: ChatSetup;

  before(async function () {
    database = await createTestDatabase();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, {
      BOTSERVER_WS_MAX_MESSAGE_SIZE: String(MAX_FRAME),
      BOTSERVER_RATE_LIMIT_PER_IP: '100000',
      BOTSERVER_RATE_LIMIT_PER_USER: '100000',
      LOG_LEVEL: 'error',
    });
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    auditWorker = await startTestAuditWorker(config, prefix);
    chat = await setupChat(api, { name: 'Private helper', greeting: 'Welcome', rules: [{ match: 'hello', reply: 'Hi there' }] });
    publicBotId = await createBot(api.url, chat.admin, { name: 'Public helper', public: true, greeting: 'Hello guest', rules: [{ match: 'ping', reply: 'pong' }] });
    otherTenant = await setupChat(api, { name: 'Other tenant bot' }, `other-${randomBytes(4).toString('hex')}`);
  });

  after(async function () {
    closeAllClients();
    await signOutAll();
    await workers?.shutdown();
    await auditWorker?.shutdown();
    if (api !== undefined) {
      for (const name of ['bot-reply', 'audit'] as const) await api.kernel.queues.queue(name).obliterate({ force: true });
      await api.stop();
    }
    await database?.destroy();
  });

  /** Polls the chain for a security.violation of `actor` with `reason`. */
  async function violationOf(actor: string, reason: string): Promise<AuditRow> {
    return waitFor(async () => {
      const rows = (await database.ownerDb('audit_events').where({ type: 'security.violation', actor })) as AuditRow[];
      return rows.find((row) => row.details.reason === reason);
    }, 10_000);
  }

  async function guestToken(botId: string): Promise<{ token: string; conversationId: string }> {
    const reply = await restJson('POST', `${api.url}/api/bots/${botId}/guest-token`);
    expect(reply.status, reply.text).to.equal(200);
    return { token: String(reply.body.token), conversationId: String(reply.body.conversationId) };
  }

  describe('handshake', () => {
    it('refuses a connection without a token with connect_error "unauthorized"', async () => {
      const error = await connectRefused(api.url, {});
      expect(error.message).to.equal('unauthorized');
    });

    it('refuses garbage tokens with "unauthorized", and accepts the real one', async () => {
      for (const token of ['garbage', 'a.b.c', `${chat.admin.token.slice(0, -4)}AAAA`, '', 'x'.repeat(1500)]) {
        const error = await connectRefused(api.url, { token });
        expect(error.message, `token ${token.slice(0, 20)}…`).to.equal('unauthorized');
      }
      const client = await connectClient(api.url, { token: chat.admin.token });
      expect(client.socket.connected).to.equal(true);
      client.close();
    });

    it('refuses an expired access token signed with the real key; the same claims unexpired connect', async () => {
      const key = createPrivateKey(api.config.secrets.jwtPrivateKeyPem);
      const now = Math.floor(Date.now() / 1000);
      const expired = await resign(chat.admin.token, key, now - 60);
      expect((await connectRefused(api.url, { token: expired })).message).to.equal('unauthorized');
      // Positive control: the re-signing itself is right, only the expiry differs.
      const fresh = await resign(chat.admin.token, key, now + 300);
      const client = await connectClient(api.url, { token: fresh });
      client.close();
    });

    it('refuses a guest token forged with another key (same kid and claims) or with alg "none"; the real one connects', async () => {
      const guest = await guestToken(publicBotId);
      const { privateKey } = await generateKeyPair('RS256');
      const forged = await resign(guest.token, privateKey, Math.floor(Date.now() / 1000) + 300);
      expect((await connectRefused(api.url, { token: forged })).message).to.equal('unauthorized');
      const { payload } = decodeJwt(guest.token);
      const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'guest+jwt' })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.`;
      expect((await connectRefused(api.url, { token: unsigned })).message).to.equal('unauthorized');
      const client = await connectClient(api.url, { token: guest.token });
      expect((await client.join(guest.conversationId)).ok).to.equal(true);
      client.close();
    });

    for (const transport of ['websocket', 'polling'] as const) {
      it(`refuses an Origin outside the whitelist (${transport}); a whitelisted Origin connects`, async () => {
        const refused = await connectRefused(api.url, { token: chat.admin.token, transports: [transport], extraHeaders: { origin: 'http://evil.test' } });
        expect(refused).to.be.instanceOf(Error);
        const client = await connectClient(api.url, { token: chat.admin.token, transports: [transport], extraHeaders: { origin: ALLOWED_ORIGIN } });
        expect((await client.join(chat.conversationId)).ok).to.equal(true);
        client.close();
      });
    }
  });

  describe('frames and abuse', () => {
    it(`closes the connection on a frame over BOTSERVER_WS_MAX_MESSAGE_SIZE (${MAX_FRAME}); a smaller one is accepted`, async () => {
      const client = await connectClient(api.url, { token: chat.admin.token });
      const small = await client.send(chat.conversationId, 's'.repeat(MAX_FRAME / 2), `small-${randomBytes(4).toString('hex')}`);
      expect(small.ok, JSON.stringify(small)).to.equal(true);
      const before = await database.ownerDb('messages').where({ conversation_id: chat.conversationId, role: 'user' }).count<Array<{ count: string }>>('* as count');
      client.socket.emit('message:send', { conversationId: chat.conversationId, text: 'b'.repeat(MAX_FRAME * 2), clientMessageId: 'too-big' });
      const reason = await client.waitForDisconnect();
      expect(reason).to.be.oneOf(['transport close', 'transport error']);
      const afterwards = await database.ownerDb('messages').where({ conversation_id: chat.conversationId, role: 'user' }).count<Array<{ count: string }>>('* as count');
      expect(afterwards[0]?.count).to.equal(before[0]?.count);
    });

    it('disconnects a socket after 5 invalid events (not before) and audits a security.violation', async () => {
      const user = await signedInUser(api, 'user');
      const client = await connectClient(api.url, { token: user.token });
      const bad: unknown[] = [{ conversationId: 'not-a-uuid' }, 'text', { conversationId: chat.conversationId, extra: 1 }, null];
      for (const payload of bad) expect(await client.emitAck('conversation:join', payload)).to.deep.equal({ ok: false, error: 'invalid_request' });
      // Still connected after 4 strikes: a valid request (for a conversation it may not see) is answered.
      expect(await client.join(chat.conversationId)).to.deep.equal({ ok: false, error: 'not_found' });
      expect(client.socket.connected).to.equal(true);
      client.socket.emit('message:send', { conversationId: chat.conversationId, text: '' });
      expect(await client.waitForDisconnect()).to.equal('io server disconnect');
      const row = await violationOf(user.id, 'invalid_events');
      expect(row.tenant_id).to.equal(user.tenantId);
      expect(row.details.channel).to.equal('socket');
    });

    it('answers a burst of 40 events with rate_limited acks, disconnects and audits it; 20 events pass', async () => {
      const calm = await connectClient(api.url, { token: chat.admin.token });
      const calmAcks = await Promise.all(Array.from({ length: 20 }, () => calm.join(chat.conversationId)));
      expect(calmAcks.every((ack) => ack.ok)).to.equal(true);
      expect(calm.socket.connected).to.equal(true);
      calm.close();

      const user = await signedInUser(api, 'user');
      const conversationId = await createConversation(api.url, user, chat.botId);
      const client = await connectClient(api.url, { token: user.token });
      const results = await Promise.allSettled(Array.from({ length: 40 }, () => client.join(conversationId, undefined, 3000)));
      const acks = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      const limited = acks.filter((ack) => !ack.ok && ack.error === 'rate_limited');
      expect(limited.length, JSON.stringify(acks)).to.be.greaterThan(0);
      expect(acks.filter((ack) => ack.ok).length).to.be.at.most(30);
      expect(await client.waitForDisconnect()).to.equal('io server disconnect');
      await violationOf(user.id, 'rate_limited');
    });
  });

  describe('conversations', () => {
    it("answers another tenant's conversation with not_found (join and send); its own conversation joins", async () => {
      const client = await connectClient(api.url, { token: chat.admin.token });
      expect(await client.join(otherTenant.conversationId)).to.deep.equal({ ok: false, error: 'not_found' });
      expect(await client.send(otherTenant.conversationId, 'hello', 'x-tenant')).to.deep.equal({ ok: false, error: 'not_found' });
      expect(await client.join(chat.conversationId)).to.deep.equal({ ok: true });
      client.close();
      const count = await database.ownerDb('messages').where({ conversation_id: otherTenant.conversationId, role: 'user' }).count<Array<{ count: string }>>('* as count');
      expect(count[0]?.count).to.equal('0');
    });

    it('a guest token for conversation X can neither join nor write conversation Y', async () => {
      const x = await guestToken(publicBotId);
      const y = await guestToken(publicBotId);
      const client = await connectClient(api.url, { token: x.token });
      expect(await client.join(y.conversationId)).to.deep.equal({ ok: false, error: 'not_found' });
      expect(await client.send(y.conversationId, 'ping', 'guest-y')).to.deep.equal({ ok: false, error: 'not_found' });
      expect(await client.join(chat.conversationId)).to.deep.equal({ ok: false, error: 'not_found' });
      expect((await restJson('GET', `${api.url}/api/conversations/${y.conversationId}/messages`, { token: x.token })).status).to.equal(404);
      expect((await restJson('POST', `${api.url}/api/conversations/${y.conversationId}/messages`, { token: x.token, body: { text: 'ping' } })).status).to.equal(404);
      // Positive control: its own conversation works, and the bot answers it.
      expect(await client.join(x.conversationId)).to.deep.equal({ ok: true });
      const sent = await client.send(x.conversationId, 'ping', 'guest-x');
      expect(sent.ok).to.equal(true);
      const reply = await client.waitForMessage((message) => message.role === 'bot' && message.conversationId === x.conversationId);
      expect(reply.text).to.equal('pong');
      client.close();
    });

    it('a repeated clientMessageId returns the same messageId and produces one reply only', async () => {
      const conversationId = await createConversation(api.url, chat.admin, chat.botId);
      const client = await connectClient(api.url, { token: chat.admin.token });
      expect((await client.join(conversationId)).ok).to.equal(true);
      const first = await client.send(conversationId, 'hello bot', 'dup-1');
      if (!first.ok) throw new Error(JSON.stringify(first));
      await client.waitForMessage((message) => message.role === 'bot' && message.conversationId === conversationId);
      const again = await client.send(conversationId, 'hello bot', 'dup-1');
      expect(again).to.deep.equal(first);
      // A later message's reply is a barrier: any second reply to the first would have been emitted before it.
      const barrier = await client.send(conversationId, 'something else', 'dup-2');
      expect(barrier.ok).to.equal(true);
      await client.waitForMessage((message) => message.role === 'bot' && message.text !== 'Hi there' && message.conversationId === conversationId);
      const bots = client.messages.filter((message) => message.role === 'bot' && message.text === 'Hi there');
      expect(bots).to.have.length(1);
      const userRows = await database.ownerDb('messages').where({ conversation_id: conversationId, role: 'user' });
      expect(userRows).to.have.length(2);
      const replies = await database.ownerDb('messages').where({ reply_to: first.messageId });
      expect(replies).to.have.length(1);
      client.close();
    });
  });

  describe('REST', () => {
    it('refuses a message over 16,000 characters with 413; exactly 16,000 is accepted', async () => {
      const url = `${api.url}/api/conversations/${chat.conversationId}/messages`;
      const tooLong = await restJson('POST', url, { token: chat.admin.token, body: { text: 'a'.repeat(16_001) } });
      expect(tooLong.status, tooLong.text).to.equal(413);
      expect(tooLong.body.error).to.equal('message_too_large');
      const longest = await restJson('POST', url, { token: chat.admin.token, body: { text: 'a'.repeat(16_000) } });
      expect(longest.status, longest.text).to.equal(202);
    });

    it("answers another tenant's bot id with 404 (GET /api/bots/:id, POST /api/bots/:id/conversations); its own bot with 200/201", async () => {
      const token = otherTenant.admin.token;
      const read = await restJson('GET', `${api.url}/api/bots/${chat.botId}`, { token });
      expect(read.status).to.equal(404);
      expect(read.body.error).to.equal('not_found');
      expect((await restJson('POST', `${api.url}/api/bots/${chat.botId}/conversations`, { token, body: {} })).status).to.equal(404);
      expect((await restJson('GET', `${api.url}/api/bots/${otherTenant.botId}`, { token })).status).to.equal(200);
      expect((await restJson('POST', `${api.url}/api/bots/${otherTenant.botId}/conversations`, { token, body: {} })).status).to.equal(201);
    });

    it('guest-token: 404 for a private bot; for a public bot 200 {token, conversationId}, which reads the greeting and sends', async () => {
      const refused = await restJson('POST', `${api.url}/api/bots/${chat.botId}/guest-token`);
      expect(refused.status).to.equal(404);
      expect(refused.body).to.not.have.property('token');
      const guest = await restJson('POST', `${api.url}/api/bots/${publicBotId}/guest-token`);
      expect(guest.status).to.equal(200);
      expect(Object.keys(guest.body).sort()).to.deep.equal(['conversationId', 'token']);
      const token = String(guest.body.token);
      const conversationId = String(guest.body.conversationId);
      const greeting = (await listConversation(api.url, token, conversationId)).map(({ role, text }) => ({ role, text }));
      expect(greeting).to.deep.equal([{ role: 'bot', text: 'Hello guest' }]);
      const messageId = await postMessage(api.url, token, conversationId, 'ping');
      const reply = await waitFor(async () => (await listConversation(api.url, token, conversationId)).find((message) => message.role === 'bot' && message.text === 'pong'));
      expect(reply.messageId).to.not.equal(messageId);
      // The guest is no account: it cannot list the tenant's bots.
      expect((await restJson('GET', `${api.url}/api/bots`, { token })).status).to.equal(401);
    });

    it("a plain user cannot create bots (403) nor read another user's conversation (404); an operator can read it", async () => {
      const user = await signedInUser(api, 'user');
      const other: SignedInUser = await signedInUser(api, 'user');
      const operator = await signedInUser(api, 'operator');
      const create = await restJson('POST', `${api.url}/api/bots`, { token: user.token, body: { name: 'Not mine' } });
      expect(create.status).to.equal(403);
      const mine = await createConversation(api.url, user, chat.botId);
      expect((await listConversation(api.url, user.token, mine)).map((message) => message.text)).to.deep.equal(['Welcome']);
      const foreign = await restJson('GET', `${api.url}/api/conversations/${mine}/messages`, { token: other.token });
      expect(foreign.status).to.equal(404);
      expect((await restJson('POST', `${api.url}/api/conversations/${mine}/messages`, { token: other.token, body: { text: 'hi' } })).status).to.equal(404);
      expect((await listConversation(api.url, operator.token, mine)).map((message) => message.text)).to.deep.equal(['Welcome']);
      // Reading is all an operator may do in someone else's conversation, until they take it over.
      const write = await restJson('POST', `${api.url}/api/conversations/${mine}/messages`, { token: operator.token, body: { text: 'hi' } });
      expect([write.status, write.body.error]).to.deep.equal([409, 'handoff_required']);
    });
  });
});
