import { expect } from 'chai';
import { SESSION_CHECK_TTL_MS } from '../../api/socket/handlers.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { closeAllClients, connectClient, createBot, createConversation, restOk, signedInUser, signOutAll } from '../helpers/chat.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/** The session id inside an access token (its payload is not secret, only signed). */
function sessionIdOf(accessToken: string): string {
  const payload = JSON.parse(Buffer.from(accessToken.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sid?: unknown };
  if (typeof payload.sid !== 'string') throw new Error('the access token names no session');
  return payload.sid;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A socket checks its session at most once per SESSION_CHECK_TTL_MS. A logout pushes the end to the session's
 * sockets at once; a session that ends without that push (its idle timeout, a push lost in a Redis outage) must
 * still end the socket on the socket's first event after the bound.
 */
describe('chat: the session check of socket events and its bound', () => {
  let database: TestDatabase;
  let api: TestApi;
  before(async () => {
    database = await createTestDatabase();
    api = await startTestApi(apiTestConfig(database.url));
  });
  after(async () => {
    closeAllClients();
    await signOutAll();
    await api.stop();
    await database.destroy();
  });

  it(`refuses the first event more than ${SESSION_CHECK_TTL_MS} ms after the session ended unannounced, and ends the socket`, async () => {
    const staff = await signedInUser(api, 'operator');
    const botId = await createBot(api.url, staff);
    const visitor = await signedInUser(api, 'user');
    const conversationId = await createConversation(api.url, visitor, botId);
    const socket = await connectClient(api.url, { token: visitor.token });
    expect(await socket.join(conversationId)).to.deep.equal({ ok: true });

    // The session disappears from Redis as an idle timeout makes it: nothing is pushed to its sockets.
    expect(await api.kernel.redis.del(`botserver:session:${sessionIdOf(visitor.token)}`)).to.equal(1);
    await sleep(SESSION_CHECK_TTL_MS + 200);

    expect(await socket.join(conversationId)).to.deep.equal({ ok: false, error: 'unauthorized' });
    await socket.waitForDisconnect(5000);
  });

  it('ends the sockets of a logged-out session at once, even right after an event found the session alive', async () => {
    const visitor = await signedInUser(api, 'user');
    const staff = await signedInUser(api, 'operator');
    const conversationId = await createConversation(api.url, visitor, await createBot(api.url, staff));
    const socket = await connectClient(api.url, { token: visitor.token });
    expect(await socket.join(conversationId)).to.deep.equal({ ok: true });
    await restOk('POST', `${api.url}/auth/logout`, 204, { token: visitor.token });
    await socket.waitForDisconnect(5000);
  });
});
