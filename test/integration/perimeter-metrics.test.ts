import { expect } from 'chai';
import { randomBytes, randomUUID } from 'node:crypto';
import { ConfigError } from '../../shared/errors.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, type TestApi } from '../helpers/api.js';
import { testConfig, uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { closeSockets, handshake, setUpChat, type ChatSetup } from '../helpers/perimeter.js';
import { dropRedisKeys } from '../helpers/redis.js';

/**
 * Issue 5 (ASVS V16): `/metrics` is Prometheus text for admins or the scrape token only, with HTTP latency
 * histograms labelled by route pattern (bounded cardinality, no ids), queue depths, sockets and security counters.
 */

interface Scrape {
  status: number;
  contentType: string | null;
  cacheControl: string | null;
  text: string;
}

async function scrape(api: TestApi, authorization?: string): Promise<Scrape> {
  const response = await fetch(`${api.url}/metrics`, { headers: authorization === undefined ? {} : { authorization } });
  return { status: response.status, contentType: response.headers.get('content-type'), cacheControl: response.headers.get('cache-control'), text: await response.text() };
}

/** The value of one sample line (`name{labels} value`), or undefined when the line is absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('perimeter: /metrics', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let tokenApi: TestApi;
  const prefixes = [uniqueQueuePrefix(), uniqueQueuePrefix()];
  const scrapeToken = randomBytes(24).toString('hex');
  let chat: ChatSetup;
  let adminAuth: string;
  let userAuth: string;

  before(async function () {
    database = await createTestDatabase();
    api = await startTestApi(apiTestConfig(database.url), prefixes[0]);
    tokenApi = await startTestApi(apiTestConfig(database.url, { BOTSERVER_METRICS_TOKEN: scrapeToken }), prefixes[1]);
    chat = await setUpChat(api);
    adminAuth = `Bearer ${chat.accessToken}`;
    const user = await createTestUser(api.config, { role: 'user' });
    userAuth = `Bearer ${(await loginTokens(api, user)).accessToken}`;
  });

  afterEach(() => closeSockets());

  after(async function () {
    closeSockets();
    await api?.stop();
    await tokenApi?.stop();
    await database?.destroy();
    if (api !== undefined) await dropRedisKeys(api.config.redisUrl, prefixes.map((prefix) => `${prefix}:*`));
  });

  describe('access', () => {
    it('answers 401 without credentials', async () => {
      const result = await scrape(api);
      expect(result.status).to.equal(401);
      expect(result.text).not.to.include('botserver_');
    });

    it("answers 403 to a user's (non-admin) access token", async () => {
      const result = await scrape(api, userAuth);
      expect(result.status).to.equal(403);
      expect(result.text).not.to.include('botserver_');
    });

    it('answers 401 to a malformed or forged bearer token, and ignores a token in the query string', async () => {
      for (const authorization of ['Bearer nonsense', `Bearer ${chat.accessToken}x`, `Basic ${Buffer.from('admin:admin').toString('base64')}`, adminAuth.toLowerCase()]) {
        const result = await scrape(api, authorization);
        expect(result.status, authorization).to.be.oneOf([401, 403]);
        expect(result.text, authorization).not.to.include('botserver_');
      }
      const query = await fetch(`${api.url}/metrics?token=${encodeURIComponent(chat.accessToken)}`);
      await query.arrayBuffer();
      expect(query.status).to.equal(401);
    });

    it("answers 200 to an admin's access token with Prometheus text that is never cached", async () => {
      const result = await scrape(api, adminAuth);
      expect(result.status).to.equal(200);
      expect(result.contentType).to.match(/^text\/plain; version=0\.0\.4/);
      expect(result.cacheControl).to.equal('no-store');
      expect(result.text).to.match(/^# HELP /);
    });

    it('accepts BOTSERVER_METRICS_TOKEN, refuses a wrong one, and keeps refusing users', async () => {
      expect((await scrape(tokenApi, `Bearer ${scrapeToken}`)).status, 'the scrape token').to.equal(200);
      for (const wrong of [`${scrapeToken}0`, scrapeToken.slice(1), randomBytes(24).toString('hex')]) {
        const result = await scrape(tokenApi, `Bearer ${wrong}`);
        expect(result.status, 'a wrong token').to.be.oneOf([401, 403]);
        expect(result.text).not.to.include('botserver_');
      }
      const user = await createTestUser(tokenApi.config, { role: 'user' });
      expect((await scrape(tokenApi, `Bearer ${(await loginTokens(tokenApi, user)).accessToken}`)).status, "a user's token").to.equal(403);
      // The scrape token of one server is nothing to another.
      expect((await scrape(api, `Bearer ${scrapeToken}`)).status, 'a server without a scrape token').to.be.oneOf([401, 403]);
    });

    it('refuses a BOTSERVER_METRICS_TOKEN shorter than 16 characters at start', () => {
      expect(() => testConfig({ BOTSERVER_METRICS_TOKEN: 'x'.repeat(15) })).to.throw(ConfigError, /BOTSERVER_METRICS_TOKEN/);
    });
  });

  describe('content', () => {
    it('has the HTTP latency histogram, queue depths, sockets and the security counters', async () => {
      const { text } = await scrape(api, adminAuth);
      for (const series of [
        '# TYPE botserver_http_request_duration_seconds histogram',
        'botserver_http_request_duration_seconds_bucket{',
        'botserver_queue_jobs{queue="bot-reply",state="waiting"}',
        'botserver_queue_jobs{queue="audit",',
        '# TYPE botserver_sockets gauge',
        '# TYPE botserver_login_failures_total counter',
        '# TYPE botserver_http_refusals_total counter',
        '# TYPE botserver_lockouts_total counter',
      ]) {
        expect(text).to.include(series);
      }
    });

    it('counts a failed login in botserver_login_failures_total and the refusal in botserver_http_refusals_total', async () => {
      const before = await scrape(api, adminAuth);
      const failuresBefore = sample(before.text, 'botserver_login_failures_total') ?? 0;
      const refusalsBefore = sample(before.text, 'botserver_http_refusals_total{status="401",route="/auth/login"}') ?? 0;
      const failed = await postJson(`${api.url}/auth/login`, { email: `nobody-${randomBytes(4).toString('hex')}@example.test`, password: 'wrong password' });
      expect(failed.status).to.equal(401);
      const after = await scrape(api, adminAuth);
      expect(sample(after.text, 'botserver_login_failures_total')).to.equal(failuresBefore + 1);
      expect(sample(after.text, 'botserver_http_refusals_total{status="401",route="/auth/login"}')).to.equal(refusalsBefore + 1);
    });

    it('counts the messages waiting for a reply in botserver_queue_jobs (no worker runs here)', async () => {
      const series = 'botserver_queue_jobs{queue="bot-reply",state="waiting"}';
      const before = sample((await scrape(api, adminAuth)).text, series) ?? 0;
      const sent = await postJson(`${api.url}/api/conversations/${chat.conversationId}/messages`, { text: 'hello' }, { authorization: adminAuth });
      expect(sent.status).to.equal(202);
      expect(sample((await scrape(api, adminAuth)).text, series)).to.equal(before + 1);
    });

    it('reports the connected sockets of this process in botserver_sockets', async () => {
      const before = sample((await scrape(api, adminAuth)).text, 'botserver_sockets') ?? 0;
      const first = await handshake(api.url, { transport: 'websocket', token: chat.accessToken });
      const second = await handshake(api.url, { transport: 'websocket', token: chat.accessToken });
      expect(first.connected && second.connected).to.equal(true);
      expect(sample((await scrape(api, adminAuth)).text, 'botserver_sockets')).to.equal(before + 2);
    });

    it('labels requests by route pattern (/api/bots/:id), never by the raw path or an id', async () => {
      const auth = { authorization: adminAuth };
      const found = await fetch(`${api.url}/api/bots/${chat.botId}`, { headers: auth });
      await found.arrayBuffer();
      expect(found.status).to.equal(200);
      const unknownBot = randomUUID();
      const missing = await fetch(`${api.url}/api/bots/${unknownBot}`, { headers: auth });
      await missing.arrayBuffer();
      expect(missing.status).to.equal(404);
      const unknownPath = `/no/such/${randomUUID()}`;
      const unmatched = await fetch(`${api.url}${unknownPath}`);
      await unmatched.arrayBuffer();
      expect(unmatched.status).to.equal(404);

      const { text } = await scrape(api, adminAuth);
      expect(sample(text, 'botserver_http_request_duration_seconds_count{method="GET",route="/api/bots/:id",status="200"}')).to.be.at.least(1);
      expect(sample(text, 'botserver_http_request_duration_seconds_count{method="GET",route="/api/bots/:id",status="404"}')).to.be.at.least(1);
      expect(text).to.include('route="unmatched"');
      for (const id of [chat.botId, unknownBot, unknownPath, chat.conversationId, chat.user.id]) expect(text).not.to.include(id);
      const routes = new Set([...text.matchAll(/route="([^"]*)"/g)].map((match) => match[1]));
      for (const route of routes) expect(route, 'a route label').to.match(/^(unmatched|\/[A-Za-z0-9_/.:-]*)$/).and.not.match(/[0-9a-f]{8}-[0-9a-f]{4}/);
    });
  });
});
