import { expect } from 'chai';
import { io as connect, type Socket } from 'socket.io-client';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

interface NewMessage {
  conversationId: string;
  messageId: string;
  role: string;
  text: string;
}

describe('chat flow: REST + Socket.IO + reply worker', () => {
  let database: TestDatabase;
  let api: TestApi;
  let workers: RunningWorkers;
  let socket: Socket | undefined;
  before(async () => {
    database = await createTestDatabase();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url);
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
  });
  after(async () => {
    socket?.disconnect();
    await workers.shutdown();
    await api.stop();
    await database.destroy();
  });

  it('answers a message sent over the socket with the rule bot, and lists both', async () => {
    const admin = await createTestUser(api.config, { role: 'admin' });
    const { accessToken } = await loginTokens(api, admin);
    const auth = { authorization: `Bearer ${accessToken}` };
    const bot = await postJson(`${api.url}/api/bots`, { name: 'Helper', greeting: 'Hi!', rules: [{ match: 'opening hours', reply: 'We open at 9.' }] }, auth);
    expect(bot.status).to.equal(201);
    const conversation = await postJson(`${api.url}/api/bots/${String(bot.body.id)}/conversations`, {}, auth);
    expect(conversation.status).to.equal(201);
    const conversationId = String(conversation.body.id);

    socket = connect(api.url, { auth: { token: accessToken }, transports: ['websocket'] });
    const received: NewMessage[] = [];
    socket.on('message:new', (message: NewMessage) => received.push(message));
    const joined = (await socket.timeout(5000).emitWithAck('conversation:join', { conversationId })) as { ok: boolean };
    expect(joined.ok).to.equal(true);
    const sent = (await socket.timeout(5000).emitWithAck('message:send', { conversationId, text: 'What are your Opening Hours?', clientMessageId: 'c-1' })) as { ok: boolean; messageId: string };
    expect(sent.ok).to.equal(true);

    const deadline = Date.now() + 10_000;
    while (!received.some((message) => message.role === 'bot') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    const reply = received.find((message) => message.role === 'bot');
    expect(reply?.text).to.equal('We open at 9.');

    const again = (await socket.timeout(5000).emitWithAck('message:send', { conversationId, text: 'What are your Opening Hours?', clientMessageId: 'c-1' })) as { ok: boolean; messageId: string };
    expect(again.messageId).to.equal(sent.messageId);

    const history = await fetch(`${api.url}/api/conversations/${conversationId}/messages`, { headers: auth });
    const body = (await history.json()) as { messages: Array<{ role: string; text: string }> };
    expect(body.messages.map((message) => `${message.role}:${message.text}`)).to.deep.equal(['bot:Hi!', 'user:What are your Opening Hours?', 'bot:We open at 9.']);
  });
});
