import { expect } from 'chai';
import { randomBytes, randomInt } from 'node:crypto';
import { apiTestConfig, createTestUser, postJson, startTestApi, startTestAuditWorker, type LoginResult, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { waitFor } from '../helpers/process.js';
import type { RunningWorkers } from '../../workers/main.js';
import { dropRedisKeys } from '../helpers/redis.js';

/**
 * Issue acceptance, from the outside: the account lockout after BOTSERVER_MAX_LOGIN_ATTEMPTS (5) failures, the
 * per-IP block after 10, identical answers for unknown e-mails, the audit trail of it all, and malformed bodies.
 *
 * The APIs trust X-Forwarded-For from loopback, so each test speaks from its own random address: the per-IP block
 * of one test (or of another suite on the same Redis) never reaches the next. No timing is asserted.
 */

const LOCKOUT_SECONDS = 900;
const SHORT_LOCKOUT_SECONDS = 3;
const CRITICAL_FAILURES = 10;

interface AuditRow {
  type: string;
  actor: string | null;
  outcome: string;
  ip: string | null;
  details: Record<string, unknown>;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));



describe('auth lockout: failed logins, lockout, IP block, audit', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let worker: RunningWorkers;
  /** Every address a test spoke from; their Redis block keys are removed afterwards. */
  const usedIps: string[] = [];
  /** Queue prefixes of the APIs started here. */
  const prefixes: string[] = [];

  /** A fresh address in 10.0.0.0/8 for one test. */
  function freshIp(): string {
    const ip = `10.${randomInt(256)}.${randomInt(256)}.${randomInt(1, 255)}`;
    usedIps.push(ip);
    return ip;
  }

  const login = (target: TestApi, email: string, password: string, ip: string): Promise<LoginResult> =>
    postJson(`${target.url}/auth/login`, { email, password }, { 'x-forwarded-for': ip });

  function expectErrorBody(result: LoginResult, status: number, code: string, what: string): void {
    expect(result.status, `${what}: ${JSON.stringify(result.body)}`).to.equal(status);
    expect(result.body, what).to.have.all.keys('error', 'message', 'requestId');
    expect(result.body.error, what).to.equal(code);
    expect(result.body.message, what).to.be.a('string').that.is.not.empty;
  }

  /** Retry-After as a positive integer no larger than `max`. */
  function retryAfterOf(result: LoginResult, max: number): number {
    const header = result.headers.get('retry-after');
    expect(header, 'Retry-After').to.be.a('string').that.matches(/^\d+$/);
    const seconds = Number(header);
    expect(seconds).to.be.at.least(1).and.at.most(max);
    return seconds;
  }

  before(async function () {
    database = await createTestDatabase();
    const config = apiTestConfig(database.url, { BOTSERVER_TRUST_PROXY: 'loopback', BOTSERVER_LOCKOUT_DURATION: String(LOCKOUT_SECONDS) });
    const prefix = uniqueQueuePrefix();
    prefixes.push(prefix);
    api = await startTestApi(config, prefix);
    worker = await startTestAuditWorker(config, prefix);
  });

  after(async function () {
    await api?.stop();
    await worker?.shutdown();
    await database?.destroy();
    if (api !== undefined) {
      await dropRedisKeys(api.config.redisUrl, [...prefixes.map((prefix) => `${prefix}:*`), ...usedIps.map((ip) => `botserver:login:ip-block:${ip}`)]);
    }
  });

  describe('account lockout', () => {
    it('answers 401 to 4 wrong passwords, locks with the 5th (423 + Retry-After), and keeps refusing the right password', async () => {
      const ip = freshIp();
      const user = await createTestUser(api.config, { role: 'user' });
      for (let attempt = 1; attempt <= 4; attempt += 1) {
        expectErrorBody(await login(api, user.email, `wrong-${attempt}`, ip), 401, 'invalid_credentials', `wrong password #${attempt}`);
      }
      const fifth = await login(api, user.email, 'wrong-5', ip);
      expectErrorBody(fifth, 423, 'account_locked', 'wrong password #5');
      retryAfterOf(fifth, LOCKOUT_SECONDS);
      const right = await login(api, user.email, user.password, ip);
      expectErrorBody(right, 423, 'account_locked', 'right password while locked');
      retryAfterOf(right, LOCKOUT_SECONDS);
      expect(right.body).not.to.have.property('accessToken');
      // The lock is the account's, not the address's: from elsewhere it is locked too.
      expectErrorBody(await login(api, user.email, user.password, freshIp()), 423, 'account_locked', 'right password from another address');
    });

    it('lets the right password in once BOTSERVER_LOCKOUT_DURATION has passed', async function () {
      this.timeout(30_000);
      const prefix = uniqueQueuePrefix();
      prefixes.push(prefix);
      const shortConfig = apiTestConfig(database.url, { BOTSERVER_TRUST_PROXY: 'loopback', BOTSERVER_LOCKOUT_DURATION: String(SHORT_LOCKOUT_SECONDS) });
      const shortApi = await startTestApi(shortConfig, prefix);
      const shortWorker = await startTestAuditWorker(shortConfig, prefix);
      try {
        const ip = freshIp();
        const user = await createTestUser(shortApi.config, { role: 'user' });
        for (let attempt = 1; attempt <= 4; attempt += 1) {
          expectErrorBody(await login(shortApi, user.email, `wrong-${attempt}`, ip), 401, 'invalid_credentials', `wrong password #${attempt}`);
        }
        const fifth = await login(shortApi, user.email, 'wrong-5', ip);
        expectErrorBody(fifth, 423, 'account_locked', 'wrong password #5');
        retryAfterOf(fifth, SHORT_LOCKOUT_SECONDS);
        const whileLocked = await login(shortApi, user.email, user.password, ip);
        expectErrorBody(whileLocked, 423, 'account_locked', 'right password while locked');
        const retryAfter = retryAfterOf(whileLocked, SHORT_LOCKOUT_SECONDS);
        // Wait out the lock (Retry-After is rounded by Redis, hence the extra second), then try once.
        await sleep((retryAfter + 1) * 1000);
        const after = await login(shortApi, user.email, user.password, ip);
        expect(after.status, JSON.stringify(after.body)).to.equal(200);
        expect(after.body.accessToken).to.be.a('string');
        // A success clears the count: the next wrong password is an ordinary 401 again, not a lock.
        expectErrorBody(await login(shortApi, user.email, 'wrong-again', ip), 401, 'invalid_credentials', 'wrong password after the lock');
      } finally {
        await shortApi.stop();
        await shortWorker.shutdown();
      }
    });

    it('answers an unknown e-mail exactly like a wrong password, and locks it after 5 attempts too', async () => {
      const ip = freshIp();
      const user = await createTestUser(api.config, { role: 'user' });
      const unknown = `nobody-${randomBytes(6).toString('hex')}@example.test`;
      for (let attempt = 1; attempt <= 5; attempt += 1) {
        const known = await login(api, user.email, `wrong-${attempt}`, ip);
        const missing = await login(api, unknown, `wrong-${attempt}`, ip);
        const status = attempt < 5 ? 401 : 423;
        const code = attempt < 5 ? 'invalid_credentials' : 'account_locked';
        expectErrorBody(known, status, code, `known e-mail, attempt ${attempt}`);
        expectErrorBody(missing, status, code, `unknown e-mail, attempt ${attempt}`);
        expect(Object.keys(missing.body).sort()).to.deep.equal(Object.keys(known.body).sort());
        expect(missing.body.message).to.equal(known.body.message);
        expect(missing.headers.has('retry-after')).to.equal(known.headers.has('retry-after'));
        if (attempt === 5) retryAfterOf(missing, LOCKOUT_SECONDS);
      }
      // And it stays locked like a real account.
      expectErrorBody(await login(api, unknown, 'anything', ip), 423, 'account_locked', 'unknown e-mail while locked');
    });

    it('matches the e-mail address case-insensitively', async () => {
      const ip = freshIp();
      const user = await createTestUser(api.config, { role: 'user' });
      expect(user.email).to.equal(user.email.toLowerCase());
      for (const email of [user.email.toUpperCase(), `${user.email.charAt(0).toUpperCase()}${user.email.slice(1)}`]) {
        const result = await login(api, email, user.password, ip);
        expect(result.status, `${email}: ${JSON.stringify(result.body)}`).to.equal(200);
        expect(result.body.accessToken).to.be.a('string');
      }
      // Failures under another spelling count against the same account.
      for (let attempt = 1; attempt <= 4; attempt += 1) await login(api, user.email.toUpperCase(), `wrong-${attempt}`, ip);
      expectErrorBody(await login(api, user.email, 'wrong-5', ip), 423, 'account_locked', 'lower-case after 4 upper-case failures');
    });
  });

  describe('per-IP block', () => {
    it('after 10 failures (attempts while locked included) refuses every login from that address with 429, not from others', async () => {
      const ip = freshIp();
      const otherIp = freshIp();
      const victim = await createTestUser(api.config, { role: 'user' });
      const bystander = await createTestUser(api.config, { role: 'user' });
      // Control: before the block, the bystander logs in from that address.
      expect((await login(api, bystander.email, bystander.password, ip)).status).to.equal(200);
      for (let attempt = 1; attempt <= CRITICAL_FAILURES; attempt += 1) {
        const result = await login(api, victim.email, `wrong-${attempt}`, ip);
        expect(result.status, `attempt ${attempt}: ${JSON.stringify(result.body)}`).to.equal(attempt < 5 ? 401 : 423);
      }
      const blocked = await login(api, bystander.email, bystander.password, ip);
      expectErrorBody(blocked, 429, 'rate_limited', 'another account from the blocked address');
      retryAfterOf(blocked, LOCKOUT_SECONDS);
      const elsewhere = await login(api, bystander.email, bystander.password, otherIp);
      expect(elsewhere.status, JSON.stringify(elsewhere.body)).to.equal(200);
      expect(elsewhere.body.accessToken).to.be.a('string');
    });
  });

  describe('audit trail', () => {
    async function auditRows(type: string, actor: string): Promise<AuditRow[]> {
      return database.ownerDb('audit_events').where({ type, actor }).orderBy('id').select<AuditRow[]>('type', 'actor', 'outcome', 'ip', 'details');
    }

    it('records login failures, one lockout (warning), a critical security violation, and a success', async () => {
      const ip = freshIp();
      const victim = await createTestUser(api.config, { role: 'user' });
      const bystander = await createTestUser(api.config, { role: 'user' });
      for (let attempt = 1; attempt <= CRITICAL_FAILURES; attempt += 1) await login(api, victim.email, `wrong-${attempt}`, ip);
      expect((await login(api, bystander.email, bystander.password, freshIp())).status).to.equal(200);

      const failures = await waitFor(async () => {
        const rows = await auditRows('auth.login.failure', victim.id);
        return rows.length >= CRITICAL_FAILURES ? rows : false;
      }, 15_000);
      expect(failures).to.have.lengthOf(CRITICAL_FAILURES);
      for (const row of failures) {
        expect(row.outcome).to.equal('failure');
        expect(row.ip).to.equal(ip);
      }

      const lockouts = await waitFor(async () => {
        const rows = await auditRows('auth.lockout', victim.id);
        return rows.length > 0 ? rows : false;
      }, 15_000);
      expect(lockouts).to.have.lengthOf(1);
      expect(lockouts[0]?.details.severity).to.equal('warning');

      const violations = await waitFor(async () => {
        const rows = await auditRows('security.violation', victim.id);
        return rows.length > 0 ? rows : false;
      }, 15_000);
      expect(violations).to.have.lengthOf(1);
      expect(violations[0]?.details.severity).to.equal('critical');
      expect(violations[0]?.ip).to.equal(ip);

      const successes = await waitFor(async () => {
        const rows = await auditRows('auth.login.success', bystander.id);
        return rows.length > 0 ? rows : false;
      }, 15_000);
      expect(successes).to.have.lengthOf(1);
      expect(successes[0]?.outcome).to.equal('success');
      // The victim never logged in.
      expect(await auditRows('auth.login.success', victim.id)).to.have.lengthOf(0);
      // No audit row holds the password that was tried.
      const all = await database.ownerDb('audit_events').select<Array<{ details: unknown }>>('details');
      expect(JSON.stringify(all)).not.to.include('wrong-1');
      expect(JSON.stringify(all)).not.to.include(bystander.password);
    });
  });

  describe('malformed login bodies', () => {
    it('answers invalid JSON with 400 invalid_json', async () => {
      for (const text of ['{"email":', 'not json', '{"email":"a@b.c","password":"x",}']) {
        const response = await fetch(`${api.url}/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-forwarded-for': freshIp() },
          body: text,
        });
        const body = (await response.json()) as Record<string, unknown>;
        expect(response.status, text).to.equal(400);
        expect(body.error, text).to.equal('invalid_json');
        expect(body.requestId).to.be.a('string');
        expect(JSON.stringify(body)).not.to.match(/Unexpected token|SyntaxError|at \S+ \(/);
      }
    });

    it('answers an unknown field with 400 invalid_request naming it', async () => {
      const result = await postJson(`${api.url}/auth/login`, { email: 'a@example.test', password: 'x', role: 'admin' }, { 'x-forwarded-for': freshIp() });
      expect(result.status).to.equal(400);
      expect(result.body.error).to.equal('invalid_request');
      expect(result.body.field).to.equal('role');
      expect(result.body.message).to.include('role');
    });

    it('answers a missing password with 400 naming the field password', async () => {
      const result = await postJson(`${api.url}/auth/login`, { email: 'a@example.test' }, { 'x-forwarded-for': freshIp() });
      expect(result.status).to.equal(400);
      expect(result.body.error).to.equal('invalid_request');
      expect(result.body.field).to.equal('password');
      const wrongType = await postJson(`${api.url}/auth/login`, { email: 'a@example.test', password: 12345678 }, { 'x-forwarded-for': freshIp() });
      expect(wrongType.status).to.equal(400);
      expect(wrongType.body.field).to.equal('password');
    });

    it('answers SQL injection attempts with 401 invalid_credentials and leaves the users table alone', async () => {
      const ip = freshIp();
      const user = await createTestUser(api.config, { role: 'user' });
      const snapshot = async (): Promise<string[]> => (await database.ownerDb('users').orderBy('id').select<Array<{ id: string; password_hash: string }>>('id', 'password_hash')).map((row) => `${row.id}:${row.password_hash}`);
      const before = await snapshot();
      expect(before.length).to.be.greaterThan(0);
      const injections = [
        "' OR '1'='1",
        "' OR 1=1 --",
        "admin'--",
        `${user.email}' --`,
        "'; DROP TABLE users; --",
        "x'; UPDATE users SET password_hash = NULL; --",
        '" OR ""="',
        "1' UNION SELECT id, password_hash FROM users --",
      ];
      for (const injection of injections) {
        expectErrorBody(await login(api, injection, 'irrelevant', ip), 401, 'invalid_credentials', `e-mail ${injection}`);
      }
      // As the password of a real account (fewer than 5, so no lock).
      for (const injection of injections.slice(0, 4)) {
        expectErrorBody(await login(api, user.email, injection, ip), 401, 'invalid_credentials', `password ${injection}`);
      }
      expect(await snapshot()).to.deep.equal(before);
      // The account still works with its real password.
      expect((await login(api, user.email, user.password, ip)).status).to.equal(200);
    });
  });
});
