import { expect } from 'chai';
import { apiTestConfig, createTestUser, loginTokens, startTestApi, type TestApi } from '../helpers/api.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

describe('auth smoke', () => {
  let database: TestDatabase;
  let api: TestApi;
  before(async () => {
    database = await createTestDatabase();
    api = await startTestApi(apiTestConfig(database.url));
  });
  after(async () => {
    await api.stop();
    await database.destroy();
  });
  it('logs in and reads /api/me', async () => {
    const user = await createTestUser(api.config, { role: 'user' });
    const { accessToken } = await loginTokens(api, user);
    const me = await fetch(`${api.url}/api/me`, { headers: { authorization: `Bearer ${accessToken}` } });
    expect(me.status).to.equal(200);
    expect(((await me.json()) as { email: string }).email).to.equal(user.email);
  });
});
