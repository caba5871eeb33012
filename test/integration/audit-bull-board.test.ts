import { randomBytes, randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { boardActionOf, boardErrorBody, OPERATOR_TENANT } from '../../api/routes/bullBoard.js';
import { QUEUE_NAMES } from '../../shared/queue/index.js';
import type { RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, startTestAuditWorker, type TestApi, type TestUser } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/process.js';

interface AuditRow {
  id: string;
  type: string;
  actor: string | null;
  tenant_id: string | null;
  target: string | null;
  outcome: string;
  request_id: string | null;
  details: Record<string, unknown>;
}

interface CookieSession {
  cookie: string;
  csrfToken: string;
}

/** Logs in with `?cookie=1`, as the web page does: the session cookie and the CSRF token. */
async function cookieLogin(api: TestApi, user: TestUser): Promise<CookieSession> {
  const result = await postJson(`${api.url}/auth/login?cookie=1`, { email: user.email, password: user.password });
  expect(result.status).to.equal(200);
  const cookie = result.headers
    .getSetCookie()
    .map((line) => line.split(';')[0] ?? '')
    .filter((pair) => pair.startsWith('botserver_'))
    .join('; ');
  return { cookie, csrfToken: String(result.body.csrfToken) };
}

describe('Bull Board at /admin/queues: access, CSRF, audit, envelopes only', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let prefix: string;
  let admin: TestUser;
  let user: TestUser;
  let adminToken: string;
  let userToken: string;
  let tenantAdmin: TestUser;
  let tenantAdminToken: string;
  let adminCookie: CookieSession;
  let userCookie: CookieSession;
  let auditWorker: RunningWorkers | undefined;

  const board = (path = ''): string => `${api.url}/admin/queues${path}`;

  /** The audit row a request produced, once the audit worker has written it. */
  async function auditOf(response: Response, type: string): Promise<AuditRow> {
    const requestId = response.headers.get('x-request-id') ?? '';
    return waitFor(async () => (await database.ownerDb('audit_events').where({ request_id: requestId, type }).first<AuditRow | undefined>()) ?? false, 15_000);
  }

  async function boardPut(path: string, headers: Record<string, string>): Promise<Response> {
    return fetch(board(path), { method: 'PUT', headers: { accept: 'application/json', ...headers } });
  }

  before(async () => {
    database = await createTestDatabase();
    prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, { LOG_LEVEL: 'error' });
    api = await startTestApi(config, prefix);
    auditWorker = await startTestAuditWorker(config, prefix);
    admin = await createTestUser(config, { role: 'admin', tenant: OPERATOR_TENANT });
    user = await createTestUser(config, { role: 'user', tenant: OPERATOR_TENANT });
    tenantAdmin = await createTestUser(config, { role: 'admin', tenant: 'customer' });
    adminToken = (await loginTokens(api, admin)).accessToken;
    tenantAdminToken = (await loginTokens(api, tenantAdmin)).accessToken;
    userToken = (await loginTokens(api, user)).accessToken;
    adminCookie = await cookieLogin(api, admin);
    userCookie = await cookieLogin(api, user);
  });

  after(async () => {
    if (api !== undefined) {
      const redis = new Redis(api.config.redisUrl, { maxRetriesPerRequest: null });
      for (const name of QUEUE_NAMES) {
        const queue = new Queue(name, { connection: redis, prefix });
        await queue.obliterate({ force: true });
        await queue.close();
      }
      redis.disconnect();
      await api.stop();
    }
    await auditWorker?.shutdown();
    await database?.destroy();
  });

  describe('who may open it', () => {
    it('anonymous: a browser page request is redirected to /, an API request gets 401 unauthorized', async () => {
      const page = await fetch(board(), { redirect: 'manual', headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
      expect(page.status).to.equal(302);
      expect(page.headers.get('location')).to.equal('/');
      const json = await fetch(board('/api/queues'), { headers: { accept: 'application/json' } });
      expect(json.status).to.equal(401);
      expect(((await json.json()) as { error: string }).error).to.equal('unauthorized');
      const put = await boardPut('/api/queues/embed/pause', {});
      expect(put.status).to.equal(401);
    });

    it('a bad bearer token is refused with 401, even for the page', async () => {
      const response = await fetch(board(), { redirect: 'manual', headers: { authorization: 'Bearer not.a.token', accept: 'text/html' } });
      expect(response.status).to.equal(401);
    });

    it('a signed-in non-admin gets 403 forbidden (bearer or cookie), and the refusal is audited as authz.denied', async () => {
      const bearer = await fetch(board('/api/queues'), { headers: { authorization: `Bearer ${userToken}` } });
      expect(bearer.status).to.equal(403);
      expect(((await bearer.json()) as { error: string }).error).to.equal('forbidden');
      const cookie = await fetch(board(), { redirect: 'manual', headers: { cookie: userCookie.cookie, accept: 'text/html' } });
      expect(cookie.status).to.equal(403);
      const denied = await auditOf(bearer, 'authz.denied');
      expect(denied).to.include({ actor: user.id, tenant_id: user.tenantId, outcome: 'denied', target: 'GET /admin/queues/api/queues' });
    });

    it("another tenant's admin gets 403: the queues hold every tenant's jobs, so they are the operator tenant's", async () => {
      const response = await fetch(board('/api/queues'), { headers: { authorization: `Bearer ${tenantAdminToken}` } });
      expect(response.status).to.equal(403);
      const denied = await auditOf(response, 'authz.denied');
      expect(denied).to.include({ actor: tenantAdmin.id, tenant_id: tenantAdmin.tenantId, outcome: 'denied' });
    });

    it('an admin (bearer) lists all six queues of the catalogue', async () => {
      const response = await fetch(board('/api/queues'), { headers: { authorization: `Bearer ${adminToken}` } });
      expect(response.status).to.equal(200);
      const body = (await response.json()) as { queues: Array<{ name: string }> };
      expect(body.queues.map((queue) => queue.name)).to.have.members([...QUEUE_NAMES]);
    });

    it("an admin (cookie) gets the board's page, under a CSP that allows no third party", async () => {
      const response = await fetch(board(), { headers: { cookie: adminCookie.cookie, accept: 'text/html' } });
      expect(response.status).to.equal(200);
      const html = await response.text();
      expect(html).to.include('<base href="/admin/queues/"');
      expect(html).to.not.include('fonts.googleapis.com');
      const csp = response.headers.get('content-security-policy') ?? '';
      expect(csp).to.include("default-src 'self'");
      expect(csp).to.include("script-src 'self'");
      expect(csp).to.not.match(/https:|\*/);
      expect(response.headers.get('x-powered-by')).to.equal(null);
    });
  });

  describe('CSRF for cookie sessions (Bull Board cannot send X-CSRF-Token)', () => {
    const pause = '/api/queues/embed/pause';
    const resume = '/api/queues/embed/resume';
    const paused = async (): Promise<boolean> => api.kernel.queues.queue('embed').isPaused();

    it('a state-changing request without Origin, Referer or CSRF token is refused (403 csrf_failed) and audited', async () => {
      const response = await boardPut(pause, { cookie: adminCookie.cookie });
      expect(response.status).to.equal(403);
      expect(((await response.json()) as { error: string }).error).to.equal('csrf_failed');
      expect(await paused()).to.equal(false);
      const event = await auditOf(response, 'admin.action');
      expect(event).to.include({ actor: admin.id, outcome: 'denied', target: 'queue:embed' });
      expect(event.details).to.include({ action: 'pause', queue: 'embed', status: 403 });
    });

    it('another site as Origin (or as Referer) is refused', async () => {
      const foreign: Array<Record<string, string>> = [{ origin: 'https://evil.example' }, { referer: 'https://evil.example/page' }, { origin: 'null' }];
      for (const headers of foreign) {
        const response = await boardPut(pause, { cookie: adminCookie.cookie, ...headers });
        expect(response.status, JSON.stringify(headers)).to.equal(403);
      }
      expect(await paused()).to.equal(false);
    });

    it('the same origin (Origin, else Referer) is accepted; so is the session CSRF token; each action is audited', async () => {
      const sameOrigin = await boardPut(pause, { cookie: adminCookie.cookie, origin: api.url });
      expect(sameOrigin.status).to.be.within(200, 299);
      expect(await paused()).to.equal(true);
      const event = await auditOf(sameOrigin, 'admin.action');
      expect(event).to.include({ actor: admin.id, tenant_id: admin.tenantId, outcome: 'success', target: 'queue:embed' });
      expect(event.details).to.include({ tool: 'bull-board', action: 'pause', queue: 'embed' });

      const byReferer = await boardPut(resume, { cookie: adminCookie.cookie, referer: `${api.url}/admin/queues/queue/embed` });
      expect(byReferer.status).to.be.within(200, 299);
      expect(await paused()).to.equal(false);
      expect((await auditOf(byReferer, 'admin.action')).details).to.include({ action: 'resume', queue: 'embed' });

      const byToken = await boardPut(pause, { cookie: adminCookie.cookie, 'x-csrf-token': adminCookie.csrfToken });
      expect(byToken.status).to.be.within(200, 299);
      const wrongToken = await boardPut(resume, { cookie: adminCookie.cookie, 'x-csrf-token': 'f'.repeat(64) });
      expect(wrongToken.status).to.equal(403);
      expect(await paused()).to.equal(true);
      const bearer = await boardPut(resume, { authorization: `Bearer ${adminToken}` });
      expect(bearer.status, 'a bearer token is not ambient: no CSRF check').to.be.within(200, 299);
      expect(await paused()).to.equal(false);
    });
  });

  describe('job data in the board is the encrypted envelope only', () => {
    it('the job list shows {v,kid,iv,tag,ct} and none of the plaintext of a bot-reply or an audit job', async () => {
      const plain = { tenantId: randomUUID(), conversationId: randomUUID(), messageId: randomUUID() };
      const job = await api.kernel.queues.enqueue('bot-reply', 'reply', plain);
      const canary = `canary-${randomBytes(8).toString('hex')}`;
      await api.kernel.audit.record({ type: 'config.change', outcome: 'success', actor: canary, target: `bot:${canary}`, details: { note: canary } });
      // The audit worker has written it (the job is now among the completed ones the board lists).
      await waitFor(async () => (await database.ownerDb('audit_events').where({ target: `bot:${canary}` }).first()) !== undefined, 15_000);

      for (const [queue, status] of [['bot-reply', 'waiting'], ['audit', 'completed']] as const) {
        const response = await fetch(board(`/api/queues?activeQueue=${queue}&status=${status}&page=1&jobsPerPage=50`), { headers: { authorization: `Bearer ${adminToken}` } });
        expect(response.status).to.equal(200);
        const text = await response.text();
        for (const secret of [plain.conversationId, plain.messageId, plain.tenantId, canary]) expect(text, `${queue} board shows ${secret}`).to.not.include(secret);
        const body = JSON.parse(text) as { queues: Array<{ name: string; jobs: Array<{ id: string; data: Record<string, unknown> }> }> };
        const jobs = body.queues.find((entry) => entry.name === queue)?.jobs ?? [];
        expect(jobs.length, `${queue} jobs listed`).to.be.greaterThan(0);
        for (const listed of jobs) expect(listed.data).to.have.all.keys('v', 'kid', 'iv', 'tag', 'ct');
        if (queue === 'bot-reply') expect(jobs.map((listed) => listed.id)).to.include(job.id);
      }
    });
  });

  describe("the board's own errors come in the API's shape {error,message,requestId}", () => {
    it('an unknown job and an unknown queue: 404 with a code from the board\'s key, nothing of its body', async () => {
      for (const [path, code, message] of [
        [`/api/queues/audit/${randomUUID()}`, 'job_not_found', 'Job not found'],
        ['/api/queues/no-such-queue/1/logs', 'queue_not_found', 'Queue not found'],
      ] as const) {
        const response = await fetch(board(path), { headers: { authorization: `Bearer ${adminToken}` } });
        expect(response.status, path).to.equal(404);
        const body = (await response.json()) as Record<string, unknown>;
        expect(body, path).to.deep.equal({ error: code, message, requestId: response.headers.get('x-request-id') });
      }
    });

    it('a board 500 keeps neither the thrown message nor a stack; an unknown key falls back to the status', () => {
      const thrown = { error: { key: 'ERRORS.INTERNAL_SERVER_ERROR' }, message: 'connect ECONNREFUSED 10.0.0.5:6379', details: 'Error: boom\n    at handler (/srv/app.js:1:1)' };
      expect(boardErrorBody(500, thrown, 'req-1')).to.deep.equal({ error: 'internal_error', message: 'Internal server error', requestId: 'req-1' });
      expect(boardErrorBody(400, { error: { key: 'not a key <script>' } }, 'req-2')).to.deep.equal({ error: 'invalid_request', message: 'The queue board refused the request', requestId: 'req-2' });
      expect(boardErrorBody(400, { error: { key: 'ERRORS.INVALID_QUERY_PARAM', options: { name: '<x>' } } }, 'req-3')).to.deep.equal({ error: 'invalid_query_param', message: 'Invalid query param', requestId: 'req-3' });
    });
  });

  describe('which action a board request is', () => {
    const cases: Array<[string, string, Record<string, string>]> = [
      ['PUT', '/api/queues/bot-reply/42/retry', { action: 'retry', queue: 'bot-reply', jobId: '42' }],
      ['PUT', '/api/queues/bot-reply/42/clean', { action: 'remove', queue: 'bot-reply', jobId: '42' }],
      ['PUT', '/api/queues/embed/7/promote', { action: 'promote', queue: 'embed', jobId: '7' }],
      ['PATCH', '/api/queues/embed/7/update-data', { action: 'update-data', queue: 'embed', jobId: '7' }],
      ['PUT', '/api/queues/audit/retry/failed', { action: 'retry-all', queue: 'audit', status: 'failed' }],
      ['PUT', '/api/queues/audit/clean/completed', { action: 'clean-all', queue: 'audit', status: 'completed' }],
      ['PUT', '/api/queues/audit/promote', { action: 'promote-all', queue: 'audit' }],
      ['PUT', '/api/queues/embed/pause', { action: 'pause', queue: 'embed' }],
      ['PUT', '/api/queues/embed/empty', { action: 'empty', queue: 'embed' }],
      ['PUT', '/api/queues/embed/obliterate', { action: 'obliterate', queue: 'embed' }],
      ['POST', '/api/queues/embed/add', { action: 'add', queue: 'embed' }],
      ['PUT', '/api/queues/pause', { action: 'pause-all' }],
      ['PUT', '/api/queues/resume', { action: 'resume-all' }],
      ['PUT', '/api/queues/embed/rate-limit/release', { action: 'rate-limit-release', queue: 'embed' }],
      ['PUT', '/api/queues/embed/job-schedulers/nightly/remove', { action: 'job-scheduler-remove', queue: 'embed', schedulerId: 'nightly' }],
      ['PUT', '/api/queues/no-such-queue/1/retry', { action: 'put /api/queues/no-such-queue/1/retry' }],
      // A malformed escape (found by the route fuzzer) is a path like any other, never an exception.
      ['PUT', '/%c0%ae%c0%ae', { action: 'put /%c0%ae%c0%ae' }],
      ['PUT', '/api/queues/%c0%ae/1/retry', { action: 'put /api/queues/%c0%ae/1/retry' }],
    ];
    for (const [method, path, expected] of cases) {
      it(`${method} ${path} → ${expected.action}`, () => {
        expect(boardActionOf(method, path)).to.deep.equal(expected);
      });
    }
  });
});
