import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, startTestAuditWorker, type TestApi, type TestUser } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { freePort, startCli, waitFor, waitForHttpOk, type RunningCli } from '../helpers/process.js';
import type { RunningWorkers } from '../../workers/main.js';
import { dropRedisKeys } from '../helpers/redis.js';

/**
 * Issue acceptance, from the outside: refresh rotation and reuse detection, logout (one session, all sessions,
 * across two API processes), the one-time password duty, RBAC on account creation, cookie sessions with CSRF, and
 * the idle timeout.
 */

interface HttpResult {
  status: number;
  text: string;
  body: Record<string, unknown>;
  headers: Headers;
}

interface TokenPair {
  accessToken: string;
  refreshToken: string;
}

interface AuditRow {
  type: string;
  actor: string | null;
  outcome: string;
  target: string | null;
  details: Record<string, unknown>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

async function call(base: string, method: string, path: string, options: { headers?: Record<string, string>; body?: unknown } = {}): Promise<HttpResult> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${base}${path}`, { method, headers, ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }) });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // stays empty (204, or a non-JSON answer shown through `text`)
  }
  return { status: response.status, text, body, headers: response.headers };
}

const me = (base: string, token: string): Promise<HttpResult> => call(base, 'GET', '/api/me', { headers: bearer(token) });
const refresh = (base: string, refreshToken: string): Promise<HttpResult> => call(base, 'POST', '/auth/refresh', { body: { refreshToken } });
const logout = (base: string, token: string, query = ''): Promise<HttpResult> => call(base, 'POST', `/auth/logout${query}`, { headers: bearer(token) });

function expectError(result: HttpResult, status: number, code: string, what: string): void {
  expect(result.status, `${what}: ${result.text}`).to.equal(status);
  expect(result.body.error, what).to.equal(code);
  expect(result.body.requestId, what).to.be.a('string');
}

interface ParsedCookie {
  name: string;
  value: string;
  attributes: Map<string, string>;
}

/** `name=value; Attr; Attr=x` as sent in Set-Cookie; attribute names lower-cased. */
function parseSetCookie(header: string): ParsedCookie {
  const [pair = '', ...rest] = header.split(';').map((part) => part.trim());
  const eq = pair.indexOf('=');
  const attributes = new Map<string, string>();
  for (const attribute of rest) {
    const at = attribute.indexOf('=');
    if (at === -1) attributes.set(attribute.toLowerCase(), '');
    else attributes.set(attribute.slice(0, at).toLowerCase(), attribute.slice(at + 1));
  }
  return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes };
}



describe('auth sessions', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let worker: RunningWorkers;
  /** Queue prefixes of the APIs started in this process. */
  const prefixes: string[] = [];

  before(async function () {
    database = await createTestDatabase();
    const config = apiTestConfig(database.url);
    const prefix = uniqueQueuePrefix();
    prefixes.push(prefix);
    api = await startTestApi(config, prefix);
    worker = await startTestAuditWorker(config, prefix);
  });

  after(async function () {
    await api?.stop();
    await worker?.shutdown();
    await database?.destroy();
    if (api !== undefined) await dropRedisKeys(api.config.redisUrl, prefixes.map((prefix) => `${prefix}:*`));
  });

  async function waitForAudit(type: string, actor: string): Promise<AuditRow[]> {
    return waitFor(async () => {
      const rows = await database.ownerDb('audit_events').where({ type, actor }).orderBy('id').select<AuditRow[]>('type', 'actor', 'outcome', 'target', 'details');
      return rows.length > 0 ? rows : false;
    }, 15_000);
  }

  describe('refresh rotation', () => {
    it('gives a new pair for a refresh token and spends the old one', async () => {
      const user = await createTestUser(api.config, { role: 'user' });
      const first = await loginTokens(api, user);
      const rotated = await refresh(api.url, first.refreshToken);
      expect(rotated.status, rotated.text).to.equal(200);
      expect(rotated.body).to.include.keys('accessToken', 'refreshToken', 'expiresIn');
      expect(rotated.body.expiresIn).to.be.a('number').above(0);
      const second = { accessToken: String(rotated.body.accessToken), refreshToken: String(rotated.body.refreshToken) };
      expect(second.refreshToken).not.to.equal(first.refreshToken);
      expect(second.accessToken).not.to.equal(first.accessToken);
      const meResult = await me(api.url, second.accessToken);
      expect(meResult.status).to.equal(200);
      expect(meResult.body.id).to.equal(user.id);
      // The new refresh token rotates in turn.
      const third = await refresh(api.url, second.refreshToken);
      expect(third.status, third.text).to.equal(200);
    });

    it('refuses a spent refresh token (401 invalid_token) and then revokes the whole family, audited as auth.token.reuse', async () => {
      const user = await createTestUser(api.config, { role: 'user' });
      const bystanderSession = await loginTokens(api, user);
      const first = await loginTokens(api, user);
      const rotated = await refresh(api.url, first.refreshToken);
      expect(rotated.status).to.equal(200);
      const newest: TokenPair = { accessToken: String(rotated.body.accessToken), refreshToken: String(rotated.body.refreshToken) };
      expect((await me(api.url, newest.accessToken)).status).to.equal(200);

      expectError(await refresh(api.url, first.refreshToken), 401, 'invalid_token', 'reuse of the spent refresh token');
      // The family is gone: the newest refresh token and every access token of that session.
      expectError(await refresh(api.url, newest.refreshToken), 401, 'invalid_token', 'newest refresh token after reuse');
      expectError(await me(api.url, newest.accessToken), 401, 'unauthorized', 'newest access token after reuse');
      expectError(await me(api.url, first.accessToken), 401, 'unauthorized', 'first access token after reuse');
      // Another session of the same user is another family and lives on.
      expect((await me(api.url, bystanderSession.accessToken)).status).to.equal(200);

      const reuse = await waitForAudit('auth.token.reuse', user.id);
      expect(reuse).to.have.lengthOf(1);
      expect(reuse[0]?.outcome).to.equal('denied');
    });

    it('refuses garbage refresh tokens with 401 invalid_token', async () => {
      const user = await createTestUser(api.config, { role: 'user' });
      const pair = await loginTokens(api, user);
      for (const value of ['garbage', randomBytes(32).toString('base64url'), `${pair.refreshToken}x`, pair.refreshToken.slice(0, -1), "' OR 1=1 --", 'x'.repeat(256)]) {
        expectError(await refresh(api.url, value), 401, 'invalid_token', `refresh token ${value.slice(0, 30)}`);
      }
      // The access token is not a refresh token (it is also longer than any refresh token may be).
      const asRefresh = await refresh(api.url, pair.accessToken);
      expect(asRefresh.status).to.be.oneOf([400, 401]);
      // The real one still works: nothing above spent it.
      expect((await refresh(api.url, pair.refreshToken)).status).to.equal(200);
    });
  });

  describe('logout', () => {
    it('answers 204 and refuses the access token and its refresh token afterwards', async () => {
      const user = await createTestUser(api.config, { role: 'user' });
      const pair = await loginTokens(api, user);
      expect((await me(api.url, pair.accessToken)).status).to.equal(200);
      const result = await logout(api.url, pair.accessToken);
      expect(result.status).to.equal(204);
      expect(result.text).to.equal('');
      expectError(await me(api.url, pair.accessToken), 401, 'unauthorized', 'access token after logout');
      expectError(await refresh(api.url, pair.refreshToken), 401, 'invalid_token', 'refresh token after logout');
      expectError(await logout(api.url, pair.accessToken), 401, 'unauthorized', 'second logout');
    });

    it('?all=1 ends every session of the user, and only theirs', async () => {
      const user = await createTestUser(api.config, { role: 'user' });
      const other = await createTestUser(api.config, { role: 'user' });
      const sessions = [await loginTokens(api, user), await loginTokens(api, user), await loginTokens(api, user)];
      const otherSession = await loginTokens(api, other);
      for (const session of sessions) expect((await me(api.url, session.accessToken)).status).to.equal(200);
      expect((await logout(api.url, (sessions[0] as TokenPair).accessToken, '?all=1')).status).to.equal(204);
      for (const [index, session] of sessions.entries()) {
        expectError(await me(api.url, session.accessToken), 401, 'unauthorized', `session ${index} after logout all`);
        expectError(await refresh(api.url, session.refreshToken), 401, 'invalid_token', `refresh of session ${index} after logout all`);
      }
      expect((await me(api.url, otherSession.accessToken)).status).to.equal(200);
      // A new login still works.
      expect((await me(api.url, (await loginTokens(api, user)).accessToken)).status).to.equal(200);
    });
  });

  describe('one-time password', () => {
    it('makes an account created by an admin change its password before anything else', async () => {
      const admin = await createTestUser(api.config, { role: 'admin' });
      const adminToken = (await loginTokens(api, admin)).accessToken;
      const email = `new-${randomBytes(6).toString('hex')}@example.test`;
      const created = await call(api.url, 'POST', '/api/users', { headers: bearer(adminToken), body: { email, role: 'user' } });
      expect(created.status, created.text).to.equal(201);
      expect(created.body.password).to.be.a('string').with.length.above(11);
      const oneTime = { email, password: String(created.body.password) };

      const firstLogin = await postJson(`${api.url}/auth/login`, oneTime);
      expect(firstLogin.status).to.equal(200);
      expect(firstLogin.body.passwordChangeRequired).to.equal(true);
      const current = String(firstLogin.body.accessToken);
      const otherSession = await loginTokens(api, oneTime);

      // Everything but /auth/login, /auth/password and /auth/logout is refused.
      const refused: Array<[string, string, unknown]> = [
        ['GET', '/api/me', undefined],
        ['POST', '/api/users', { email: `x-${randomBytes(4).toString('hex')}@example.test`, role: 'user' }],
        ['POST', '/auth/mfa/setup', undefined],
        ['GET', '/.well-known/jwks.json', undefined],
      ];
      for (const [method, path, body] of refused) {
        expectError(await call(api.url, method, path, { headers: bearer(current), body }), 403, 'password_change_required', `${method} ${path}`);
      }

      const weak = await call(api.url, 'POST', '/auth/password', { headers: bearer(current), body: { currentPassword: oneTime.password, newPassword: 'short' } });
      expectError(weak, 400, 'weak_password', 'short new password');
      expect(weak.body.field).to.equal('newPassword');
      const same = await call(api.url, 'POST', '/auth/password', { headers: bearer(current), body: { currentPassword: oneTime.password, newPassword: oneTime.password } });
      expectError(same, 400, 'weak_password', 'new password equal to the old one');
      const wrongCurrent = await call(api.url, 'POST', '/auth/password', { headers: bearer(current), body: { currentPassword: 'not-the-password', newPassword: 'a-much-better-password-1' } });
      expectError(wrongCurrent, 401, 'invalid_credentials', 'wrong current password');
      // Still pending after the refusals.
      expectError(await me(api.url, current), 403, 'password_change_required', 'after refused changes');

      const newPassword = `a-much-better-password-${randomBytes(4).toString('hex')}`;
      const changed = await call(api.url, 'POST', '/auth/password', { headers: bearer(current), body: { currentPassword: oneTime.password, newPassword } });
      expect(changed.status, changed.text).to.equal(204);

      const meResult = await me(api.url, current);
      expect(meResult.status, meResult.text).to.equal(200);
      expect(meResult.body.email).to.equal(email);
      expectError(await me(api.url, otherSession.accessToken), 401, 'unauthorized', 'the other session after the change');
      expectError(await refresh(api.url, otherSession.refreshToken), 401, 'invalid_token', 'the other session refresh after the change');

      expectError(await call(api.url, 'POST', '/auth/login', { body: oneTime }), 401, 'invalid_credentials', 'the one-time password after the change');
      const fresh = await postJson(`${api.url}/auth/login`, { email, password: newPassword });
      expect(fresh.status).to.equal(200);
      expect(fresh.body).not.to.have.property('passwordChangeRequired');
      expect((await me(api.url, String(fresh.body.accessToken))).status).to.equal(200);
    });
  });

  describe('RBAC on POST /api/users', () => {
    it('refuses a user or operator (403 forbidden), creates nothing, and audits authz.denied', async () => {
      const callers = [await createTestUser(api.config, { role: 'user' }), await createTestUser(api.config, { role: 'operator' })];
      const userCount = async (): Promise<number> => Number((await database.ownerDb('users').count<Array<{ n: string }>>({ n: '*' }))[0]?.n);
      const before = await userCount();
      for (const caller of callers) {
        const token = (await loginTokens(api, caller)).accessToken;
        const result = await call(api.url, 'POST', '/api/users', { headers: bearer(token), body: { email: `x-${randomBytes(4).toString('hex')}@example.test`, role: 'admin' } });
        expectError(result, 403, 'forbidden', `${caller.email} creating an admin`);
        const denied = await waitForAudit('authz.denied', caller.id);
        expect(denied).to.have.lengthOf(1);
        expect(denied[0]?.outcome).to.equal('denied');
        expect(denied[0]?.target).to.include('/api/users');
      }
      expect(await userCount()).to.equal(before);
    });

    it("lets an admin create accounts in the admin's own tenant only", async () => {
      const suffix = randomBytes(4).toString('hex');
      const adminA = await createTestUser(api.config, { role: 'admin', tenant: `tenant-a-${suffix}` });
      const adminB = await createTestUser(api.config, { role: 'admin', tenant: `tenant-b-${suffix}` });
      expect(adminA.tenantId).not.to.equal(adminB.tenantId);
      const token = (await loginTokens(api, adminA)).accessToken;
      const email = `member-${suffix}@example.test`;
      const created = await call(api.url, 'POST', '/api/users', { headers: bearer(token), body: { email, role: 'operator' } });
      expect(created.status, created.text).to.equal(201);
      expect(created.body.tenant).to.equal(adminA.tenant);
      const row = await database.ownerDb('users').where({ id: String(created.body.id) }).first<{ tenant_id: string } | undefined>('tenant_id');
      expect(row?.tenant_id).to.equal(adminA.tenantId);
      const membership = await database.ownerDb('memberships').where({ user_id: String(created.body.id) }).select<Array<{ tenant_id: string; role: string }>>('tenant_id', 'role');
      expect(membership).to.deep.equal([{ tenant_id: adminA.tenantId, role: 'operator' }]);

      // Naming another tenant is not possible.
      const elsewhere = await call(api.url, 'POST', '/api/users', { headers: bearer(token), body: { email: `other-${suffix}@example.test`, role: 'user', tenant: adminB.tenant } });
      expectError(elsewhere, 400, 'invalid_request', 'tenant in the body');
      expect(elsewhere.body.field).to.equal('tenant');
      const count = await database.ownerDb('users').where({ tenant_id: adminB.tenantId }).count<Array<{ n: string }>>({ n: '*' });
      expect(Number(count[0]?.n)).to.equal(1);
    });
  });

  describe('cookie session', () => {
    async function cookieLogin(user: TestUser): Promise<{ session: ParsedCookie; csrf: ParsedCookie; csrfToken: string }> {
      const result = await call(api.url, 'POST', '/auth/login?cookie=1', { body: { email: user.email, password: user.password } });
      expect(result.status, result.text).to.equal(200);
      const cookies = result.headers.getSetCookie().map(parseSetCookie);
      const session = cookies.find((cookie) => cookie.name === 'botserver_session');
      const csrf = cookies.find((cookie) => cookie.name === 'botserver_csrf');
      if (session === undefined || csrf === undefined) throw new Error(`cookies missing: ${result.headers.getSetCookie().join(' | ')}`);
      expect(result.body.csrfToken).to.be.a('string').that.is.not.empty;
      return { session, csrf, csrfToken: String(result.body.csrfToken) };
    }

    const withCookie = (session: ParsedCookie, extra: Record<string, string> = {}): Record<string, string> => ({ cookie: `${session.name}=${session.value}`, ...extra });

    it('sets an HttpOnly SameSite=Strict session cookie and a readable CSRF cookie (no Secure without TLS)', async () => {
      const user = await createTestUser(api.config, { role: 'user' });
      const { session, csrf, csrfToken } = await cookieLogin(user);
      expect(session.value).to.match(/^[0-9a-f-]{36}\..+/);
      expect(session.attributes.has('httponly')).to.equal(true);
      expect(session.attributes.get('samesite')?.toLowerCase()).to.equal('strict');
      expect(session.attributes.get('path')).to.equal('/');
      expect(session.attributes.has('secure')).to.equal(false);
      expect(csrf.attributes.has('httponly')).to.equal(false);
      expect(csrf.attributes.get('samesite')?.toLowerCase()).to.equal('strict');
      expect(csrf.attributes.get('path')).to.equal('/');
      expect(decodeURIComponent(csrf.value)).to.equal(csrfToken);
      // Without ?cookie=1 no cookie is set.
      const plain = await postJson(`${api.url}/auth/login`, { email: user.email, password: user.password });
      expect(plain.status).to.equal(200);
      expect(plain.headers.getSetCookie()).to.deep.equal([]);
      expect(plain.body).not.to.have.property('csrfToken');
    });

    it('authenticates with the cookie alone, demands the CSRF token for state changes, and ends with logout', async () => {
      const user = await createTestUser(api.config, { role: 'user' });
      const { session, csrfToken } = await cookieLogin(user);
      const other = await cookieLogin(await createTestUser(api.config, { role: 'user' }));

      const meResult = await call(api.url, 'GET', '/api/me', { headers: withCookie(session) });
      expect(meResult.status, meResult.text).to.equal(200);
      expect(meResult.body.id).to.equal(user.id);

      // A tampered cookie secret is no session at all.
      const [sid] = session.value.split('.');
      const tampered = { ...session, value: `${sid}.${randomBytes(32).toString('base64url')}` };
      expectError(await call(api.url, 'GET', '/api/me', { headers: withCookie(tampered) }), 401, 'unauthorized', 'tampered cookie');

      expectError(await call(api.url, 'POST', '/auth/logout', { headers: withCookie(session) }), 403, 'csrf_failed', 'logout without X-CSRF-Token');
      expectError(await call(api.url, 'POST', '/auth/logout', { headers: withCookie(session, { 'x-csrf-token': 'wrong' }) }), 403, 'csrf_failed', 'logout with a wrong X-CSRF-Token');
      expectError(await call(api.url, 'POST', '/auth/logout', { headers: withCookie(session, { 'x-csrf-token': other.csrfToken }) }), 403, 'csrf_failed', "logout with another session's token");
      expectError(
        await call(api.url, 'POST', '/auth/password', { headers: withCookie(session), body: { currentPassword: user.password, newPassword: 'another-long-password-1' } }),
        403,
        'csrf_failed',
        'password change without X-CSRF-Token',
      );
      // The refusals changed nothing.
      expect((await call(api.url, 'GET', '/api/me', { headers: withCookie(session) })).status).to.equal(200);

      const out = await call(api.url, 'POST', '/auth/logout', { headers: withCookie(session, { 'x-csrf-token': csrfToken }) });
      expect(out.status, out.text).to.equal(204);
      expectError(await call(api.url, 'GET', '/api/me', { headers: withCookie(session) }), 401, 'unauthorized', 'cookie after logout');
      // The other browser session is untouched.
      expect((await call(api.url, 'GET', '/api/me', { headers: withCookie(other.session) })).status).to.equal(200);
    });
  });

  describe('idle timeout (BOTSERVER_SESSION_TIMEOUT=2)', () => {
    let shortApi: TestApi;
    let shortWorker: RunningWorkers;

    before(async function () {
      const config = apiTestConfig(database.url, { BOTSERVER_SESSION_TIMEOUT: '2' });
      const prefix = uniqueQueuePrefix();
      prefixes.push(prefix);
      shortApi = await startTestApi(config, prefix);
      shortWorker = await startTestAuditWorker(config, prefix);
    });

    after(async function () {
      await shortApi?.stop();
      await shortWorker?.shutdown();
    });

    it('keeps a session that is used, and ends one left idle for 3 s', async function () {
      this.timeout(30_000);
      const user = await createTestUser(shortApi.config, { role: 'user' });
      const pair = await loginTokens(shortApi, user);
      // Used every second, the session outlives its 2 s idle timeout.
      for (let step = 0; step < 3; step += 1) {
        await sleep(1000);
        expect((await me(shortApi.url, pair.accessToken)).status, `use after ${step + 1} s`).to.equal(200);
      }
      await sleep(3000);
      expectError(await me(shortApi.url, pair.accessToken), 401, 'unauthorized', 'after 3 s idle');
      expectError(await refresh(shortApi.url, pair.refreshToken), 401, 'invalid_token', 'refresh after 3 s idle');
    });
  });

  describe('long-lived sessions (BOTSERVER_SESSION_TIMEOUT=1)', () => {
    let shortApi: TestApi;
    let shortWorker: RunningWorkers;

    before(async function () {
      const config = apiTestConfig(database.url, { BOTSERVER_SESSION_TIMEOUT: '1' });
      const prefix = uniqueQueuePrefix();
      prefixes.push(prefix);
      shortApi = await startTestApi(config, prefix);
      shortWorker = await startTestAuditWorker(config, prefix);
    });

    after(async function () {
      await shortApi?.stop();
      await shortWorker?.shutdown();
    });

    // The server keeps each user's list of sessions for 24 idle periods; a session in constant use lives longer
    // than that and must still be found by "log out everywhere" (and by a password change).
    it('?all=1 also ends a session kept alive for longer than 24 idle periods', async function () {
      this.timeout(60_000);
      const user = await createTestUser(shortApi.config, { role: 'user' });
      const longLived = await loginTokens(shortApi, user);
      const until = Date.now() + 26_000;
      while (Date.now() < until) {
        const result = await me(shortApi.url, longLived.accessToken);
        expect(result.status, 'the session is kept alive by use').to.equal(200);
        await sleep(100);
      }
      const fresh = await loginTokens(shortApi, user);
      expect((await logout(shortApi.url, fresh.accessToken, '?all=1')).status).to.equal(204);
      expectError(await me(shortApi.url, fresh.accessToken), 401, 'unauthorized', 'the session that logged out everywhere');
      expectError(await me(shortApi.url, longLived.accessToken), 401, 'unauthorized', 'the long-lived session after logout everywhere');
    });
  });

  describe('two API processes', () => {
    const children: RunningCli[] = [];
    let baseA: string;
    let baseB: string;
    let shared: TestApi['config'];

    before(async function () {
      this.timeout(60_000);
      // Made here so the dev JWT key is generated once, before either process reads the shared data directory.
      shared = apiTestConfig(database.url);
      const env = {
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        DATABASE_URL: database.url,
        REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
        BOTSERVER_DATA_DIR: shared.dataDir,
        BOTSERVER_JWT_SECRET: shared.secrets.jwtSecret,
        BOTSERVER_ENCRYPTION_KEY: shared.secrets.encryptionKey,
        DATABASE_ENCRYPTION_KEY: shared.secrets.databaseEncryptionKey,
        // No audit worker runs for these processes' default queue on the shared Redis; keep nothing there.
        BOTSERVER_ENABLE_AUDIT: 'false',
      };
      const [portA, portB] = [await freePort(), await freePort()];
      const bases: string[] = [];
      for (const port of [portA, portB]) {
        const child = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
        children.push(child);
        bases.push(`http://127.0.0.1:${port}`);
      }
      [baseA = '', baseB = ''] = bases;
      await Promise.all(children.map((child, index) => waitForHttpOk(child, `${bases[index] ?? ''}/healthz`, 30_000)));
    });

    after(async function () {
      this.timeout(30_000);
      await Promise.allSettled(children.map((child) => child.stop()));
    });

    it('serve the same JWKS', async () => {
      const [a, b] = await Promise.all([call(baseA, 'GET', '/.well-known/jwks.json'), call(baseB, 'GET', '/.well-known/jwks.json')]);
      expect(a.status).to.equal(200);
      expect(a.body.keys).to.be.an('array').with.lengthOf(1);
      expect(a.body).to.deep.equal(b.body);
    });

    it('accept on B a token from a login on A, and refuse it on B right after logout on A', async () => {
      const user = await createTestUser(shared, { role: 'user' });
      const pair = await loginTokens({ url: baseA }, user);
      const onB = await me(baseB, pair.accessToken);
      expect(onB.status, onB.text).to.equal(200);
      expect(onB.body.email).to.equal(user.email);

      // Rotation is shared too: refreshed on B, the spent token is refused on A (and that revokes the family).
      const second = await loginTokens({ url: baseA }, user);
      expect((await refresh(baseB, second.refreshToken)).status).to.equal(200);
      expectError(await refresh(baseA, second.refreshToken), 401, 'invalid_token', 'spent on B, reused on A');
      expectError(await me(baseB, second.accessToken), 401, 'unauthorized', 'family revoked on A, seen on B');

      expect((await me(baseB, pair.accessToken)).status).to.equal(200);
      expect((await logout(baseA, pair.accessToken)).status).to.equal(204);
      expectError(await me(baseB, pair.accessToken), 401, 'unauthorized', 'on B after logout on A');
      expectError(await refresh(baseB, pair.refreshToken), 401, 'invalid_token', 'refresh on B after logout on A');
      for (const child of children) expect(child.stderr).not.to.match(/unhandled|TypeError|ReferenceError/i);
    });
  });
});
