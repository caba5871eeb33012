import { expect } from 'chai';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { closeAllClients, connectClient, createBot, createConversation, restJson, restOk, signedInUser, signOutAll } from '../helpers/chat.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * The reply worker keeps each bot's profile between messages; a change of the bot (PATCH, DELETE) must be seen by
 * the very next message, with no stale answer in between.
 */
describe('chat: a changed bot answers with its new rules at once', () => {
  let database: TestDatabase;
  let api: TestApi;
  let workers: RunningWorkers;
  before(async () => {
    database = await createTestDatabase();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url);
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
  });
  after(async () => {
    closeAllClients();
    await signOutAll();
    await workers.shutdown();
    await api.stop();
    await database.destroy();
  });

  it('answers from the rules of the moment, before and after each change, and not at all once the bot is deleted', async () => {
    const staff = await signedInUser(api, 'operator');
    const botId = await createBot(api.url, staff, { rules: [{ match: 'hours', reply: 'We open at 9.' }] });
    const visitor = await signedInUser(api, 'user');
    const conversationId = await createConversation(api.url, visitor, botId);
    const socket = await connectClient(api.url, { token: visitor.token });
    expect(await socket.join(conversationId)).to.deep.equal({ ok: true });
    const ask = async (n: number): Promise<string> => {
      const seen = socket.messages.length;
      expect(await socket.send(conversationId, 'opening hours?', `changes-${n}`)).to.include({ ok: true });
      const reply = await socket.waitForMessage((message) => message.role === 'bot' && socket.messages.indexOf(message) >= seen);
      return reply.text;
    };

    expect(await ask(1)).to.equal('We open at 9.');
    expect(await ask(2)).to.equal('We open at 9.');
    await restOk('PATCH', `${api.url}/api/bots/${botId}`, 200, { token: staff.token, body: { rules: [{ match: 'hours', reply: 'We open at 10 now.' }] } });
    expect(await ask(3)).to.equal('We open at 10 now.');
    await restOk('PATCH', `${api.url}/api/bots/${botId}`, 200, { token: staff.token, body: { rules: [{ match: 'hours', reply: 'Back to 9.' }] } });
    expect(await ask(4)).to.equal('Back to 9.');

    expect((await restJson('DELETE', `${api.url}/api/bots/${botId}`, { token: staff.token })).status).to.equal(204);
    const seen = socket.messages.length;
    expect(await socket.send(conversationId, 'opening hours?', 'changes-5')).to.include({ ok: true });
    // The worker gives the message up at once (its bot is gone) and says so; no answer came before that.
    await socket.waitForError((error) => error.conversationId === conversationId && error.error === 'reply_failed');
    expect(socket.messages.slice(seen).filter((message) => message.role === 'bot')).to.deep.equal([]);
  });
});
