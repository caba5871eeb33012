import { expect } from 'chai';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { generateJwtPrivateKeyPem } from '../../shared/config/index.js';
import { apiTestConfig, createTestUser, loginTokens, startTestApi, type TestApi } from '../helpers/api.js';
import { randomHexKey } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanupProcesses, freePort, makeTempDir, startCli, startPrivateRedis, waitForHttpOk, type PrivateRedis, type RunningCli } from '../helpers/process.js';
import { dropRedisKeys } from '../helpers/redis.js';

/**
 * Issue 5 (ASVS V2.4/V4.1): the per-IP budget (BOTSERVER_RATE_LIMIT_PER_IP=100 per minute) is shared by every API
 * process through Redis, the 101st request gets 429 `rate_limited` with Retry-After and RateLimit-* headers, the
 * health checks are never limited, X-Forwarded-For only counts when a proxy is trusted, `/auth/*` and guest tokens
 * have stricter buckets, and each user has an hourly budget.
 *
 * Redis is a private redis-server: the "no trusted proxy" budget is the one of 127.0.0.1, which every suite on the
 * shared Redis uses; here each test starts from no counters at all (beforeEach drops `botserver:rl:*`). No timing
 * is asserted: a minute window is far longer than any of these tests.
 */

const PER_IP = 100;
const AUTH_BUDGET = PER_IP / 5;
const GUEST_BUDGET = PER_IP / 10;
const PER_USER = 5;

interface Answer {
  status: number;
  header(name: string): string | null;
  text: string;
}

async function request(url: string, init: { method?: string; headers?: Record<string, string>; body?: unknown } = {}): Promise<Answer> {
  const response = await fetch(url, {
    method: init.method ?? 'GET',
    headers: { ...(init.body === undefined ? {} : { 'content-type': 'application/json' }), ...init.headers },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  return { status: response.status, header: (name) => response.headers.get(name), text };
}

function integerHeader(answer: Answer, name: string): number {
  const value = answer.header(name);
  expect(value, name).to.be.a('string').that.matches(/^\d+$/);
  return Number(value);
}

/** A 429 `rate_limited` with the error body of CONTRACT §3 (no stack, no internals), Retry-After and RateLimit-*. */
function expectRateLimited(answer: Answer, limit: number, windowSeconds: number, what: string): void {
  expect(answer.status, `${what}: ${answer.text}`).to.equal(429);
  const body = JSON.parse(answer.text) as Record<string, unknown>;
  expect(body, what).to.have.all.keys('error', 'message', 'requestId');
  expect(body.error, what).to.equal('rate_limited');
  expect(answer.text, `${what}: no stack trace`).not.to.match(/\bat .+:\d+:\d+|\.ts\b|node_modules|Error:|stack/i);
  const retryAfter = integerHeader(answer, 'retry-after');
  expect(retryAfter, `${what}: Retry-After`).to.be.at.least(1).and.at.most(windowSeconds);
  expect(integerHeader(answer, 'ratelimit-limit'), `${what}: RateLimit-Limit`).to.equal(limit);
  expect(integerHeader(answer, 'ratelimit-remaining'), `${what}: RateLimit-Remaining`).to.equal(0);
  expect(integerHeader(answer, 'ratelimit-reset'), `${what}: RateLimit-Reset`).to.be.at.most(windowSeconds);
}

describe('perimeter: rate limits', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let redis: PrivateRedis;
  let apiA: { cli: RunningCli; url: string };
  let apiB: { cli: RunningCli; url: string };
  const inProcess: TestApi[] = [];

  async function startApi(env: Record<string, string>): Promise<{ cli: RunningCli; url: string }> {
    const port = await freePort();
    const cli = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
    const url = `http://127.0.0.1:${port}`;
    await waitForHttpOk(cli, `${url}/readyz`, 60_000);
    return { cli, url };
  }

  /** An API in this process on the private Redis with the real per-IP budget (and `env`). */
  async function startInProcess(env: Record<string, string>): Promise<TestApi> {
    const api = await startTestApi(apiTestConfig(database.url, { REDIS_URL: redis.url, BOTSERVER_RATE_LIMIT_PER_IP: String(PER_IP), ...env }));
    inProcess.push(api);
    return api;
  }

  /** Alternates between the two processes: A, B, A, B, … */
  const either = (i: number): string => (i % 2 === 0 ? apiA.url : apiB.url);

  /** Spends the whole per-IP budget (alternating A/B) on GET /api/me, checking each answer passed the limiter. */
  async function spendIpBudget(headersOf: (i: number) => Record<string, string> = () => ({})): Promise<void> {
    for (let i = 0; i < PER_IP; i += 1) {
      const answer = await request(`${either(i)}/api/me`, { headers: headersOf(i) });
      expect(answer.status, `request #${i + 1}: ${answer.text}`).to.equal(401);
      expect(integerHeader(answer, 'ratelimit-limit'), `request #${i + 1}`).to.equal(PER_IP);
      expect(integerHeader(answer, 'ratelimit-remaining'), `request #${i + 1}`).to.equal(PER_IP - 1 - i);
    }
  }

  before(async function () {
    [database, redis] = await Promise.all([createTestDatabase(), freePort().then(startPrivateRedis)]);
    const env = {
      DATABASE_URL: database.url,
      REDIS_URL: redis.url,
      BOTSERVER_DATA_DIR: makeTempDir('botserver-ratelimit-data-'),
      BOTSERVER_JWT_SECRET: randomHexKey(),
      BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
      DATABASE_ENCRYPTION_KEY: randomHexKey(),
      BOTSERVER_JWT_PRIVATE_KEY: generateJwtPrivateKeyPem(),
      // The real budget (children default to 100000); no BOTSERVER_TRUST_PROXY.
      BOTSERVER_RATE_LIMIT_PER_IP: String(PER_IP),
    };
    [apiA, apiB] = await Promise.all([startApi(env), startApi(env)]);
  });

  beforeEach(async () => {
    await dropRedisKeys(redis.url, ['botserver:rl:*']);
  });

  after(async function () {
    for (const api of inProcess) await api.stop();
    await Promise.all([apiA?.cli.stop(), apiB?.cli.stop()]);
    await cleanupProcesses();
    await redis?.stop();
    await database?.destroy();
  });

  it('lets 100 requests in a minute from one IP through two API processes, and answers the 101st (on either) with 429', async () => {
    await spendIpBudget();
    expectRateLimited(await request(`${apiA.url}/api/me`), PER_IP, 60, '101st request, process A');
    expectRateLimited(await request(`${apiB.url}/api/me`), PER_IP, 60, '102nd request, process B');
    // Any route, any method, counts against the same budget.
    expectRateLimited(await request(`${apiB.url}/`), PER_IP, 60, 'the web chat page');
    expectRateLimited(await request(`${apiA.url}/auth/login`, { method: 'POST', body: { email: 'a@example.test', password: 'x' } }), PER_IP, 60, 'a login');
  });

  it('never limits /healthz and /readyz, even once the budget is spent', async () => {
    await spendIpBudget();
    expectRateLimited(await request(`${apiA.url}/api/me`), PER_IP, 60, '101st request');
    for (let i = 0; i < 30; i += 1) {
      for (const path of ['/healthz', '/readyz']) {
        const answer = await request(`${either(i)}${path}`);
        expect(answer.status, `${path} #${i + 1}`).to.equal(200);
        expect(answer.header('ratelimit-limit'), `${path} #${i + 1}`).to.equal(null);
      }
    }
    expectRateLimited(await request(`${apiB.url}/api/me`), PER_IP, 60, 'after the health checks');
  });

  it('without a trusted proxy, a spoofed X-Forwarded-For (or Forwarded, X-Real-IP) does not reset the budget', async () => {
    const spoofed = (i: number): Record<string, string> => ({
      'x-forwarded-for': `10.${i}.0.1`,
      forwarded: `for=10.${i}.0.2`,
      'x-real-ip': `10.${i}.0.3`,
    });
    await spendIpBudget(spoofed);
    expectRateLimited(await request(`${apiA.url}/api/me`, { headers: spoofed(PER_IP) }), PER_IP, 60, 'a never-seen X-Forwarded-For');
    expectRateLimited(await request(`${apiB.url}/api/me`, { headers: { 'x-forwarded-for': '127.0.0.2' } }), PER_IP, 60, 'a loopback X-Forwarded-For');
    // Counted under the socket's address only.
    const client = new Redis(redis.url);
    try {
      expect(await client.keys('botserver:rl:ip:*')).to.deep.equal(['botserver:rl:ip:127.0.0.1']);
    } finally {
      client.disconnect();
    }
  });

  it('with BOTSERVER_TRUST_PROXY=loopback, each forwarded client address has its own budget, and a forged left entry does not help', async () => {
    const api = await startInProcess({ BOTSERVER_TRUST_PROXY: 'loopback' });
    const client = '203.0.113.7';
    for (let i = 0; i < PER_IP; i += 1) {
      // The left entries are the client's own claims: only the one the trusted proxy appended counts.
      const answer = await request(`${api.url}/api/me`, { headers: { 'x-forwarded-for': `198.51.100.${i}, ${client}` } });
      expect(answer.status, `request #${i + 1}`).to.equal(401);
      expect(integerHeader(answer, 'ratelimit-remaining'), `request #${i + 1}`).to.equal(PER_IP - 1 - i);
    }
    expectRateLimited(await request(`${api.url}/api/me`, { headers: { 'x-forwarded-for': client } }), PER_IP, 60, `${client}, 101st`);
    expectRateLimited(await request(`${api.url}/api/me`, { headers: { 'x-forwarded-for': `198.51.100.250, ${client}` } }), PER_IP, 60, 'a new forged left entry');
    const other = await request(`${api.url}/api/me`, { headers: { 'x-forwarded-for': '203.0.113.8' } });
    expect(other.status, 'another client address').to.equal(401);
    expect(integerHeader(other, 'ratelimit-remaining')).to.equal(PER_IP - 1);
    // The proxy itself (no header: 127.0.0.1) was never charged for its clients.
    const direct = await request(`${api.url}/api/me`);
    expect(direct.status).to.equal(401);
    expect(integerHeader(direct, 'ratelimit-remaining')).to.equal(PER_IP - 1);
  });

  it(`gives /auth/* its stricter bucket (${AUTH_BUDGET} a minute), apart from the other routes`, async () => {
    for (let i = 0; i < AUTH_BUDGET; i += 1) {
      const answer = await request(`${either(i)}/auth/login`, { method: 'POST', body: {} });
      expect(answer.status, `login #${i + 1}: ${answer.text}`).to.equal(400);
      expect(integerHeader(answer, 'ratelimit-limit'), `login #${i + 1}`).to.equal(AUTH_BUDGET);
      expect(integerHeader(answer, 'ratelimit-remaining'), `login #${i + 1}`).to.equal(AUTH_BUDGET - 1 - i);
    }
    expectRateLimited(await request(`${apiA.url}/auth/login`, { method: 'POST', body: {} }), AUTH_BUDGET, 60, `login #${AUTH_BUDGET + 1}`);
    expectRateLimited(await request(`${apiB.url}/auth/refresh`, { method: 'POST', body: { refreshToken: 'x' } }), AUTH_BUDGET, 60, 'another /auth route');
    // The rest of the API still has the per-IP budget (less what the logins spent).
    const me = await request(`${apiB.url}/api/me`);
    expect(me.status).to.equal(401);
    expect(integerHeader(me, 'ratelimit-limit')).to.equal(PER_IP);
    expect(integerHeader(me, 'ratelimit-remaining')).to.equal(PER_IP - AUTH_BUDGET - 2 - 1);
  });

  it(`gives guest tokens their stricter bucket (${GUEST_BUDGET} a minute)`, async () => {
    const url = (i: number): string => `${either(i)}/api/bots/${randomUUID()}/guest-token`;
    for (let i = 0; i < GUEST_BUDGET; i += 1) {
      const answer = await request(url(i), { method: 'POST', body: {} });
      expect(answer.status, `guest token #${i + 1}: ${answer.text}`).to.equal(404);
      expect(integerHeader(answer, 'ratelimit-limit'), `guest token #${i + 1}`).to.equal(GUEST_BUDGET);
    }
    expectRateLimited(await request(url(GUEST_BUDGET), { method: 'POST', body: {} }), GUEST_BUDGET, 60, `guest token #${GUEST_BUDGET + 1}`);
  });

  it(`limits each user to BOTSERVER_RATE_LIMIT_PER_USER (${PER_USER}) authenticated requests an hour`, async () => {
    const api = await startInProcess({ BOTSERVER_RATE_LIMIT_PER_USER: String(PER_USER) });
    const [first, second] = await Promise.all([createTestUser(api.config, { role: 'user' }), createTestUser(api.config, { role: 'user' })]);
    const firstToken = (await loginTokens(api, first)).accessToken;
    const secondToken = (await loginTokens(api, second)).accessToken;
    const me = (token: string): Promise<Answer> => request(`${api.url}/api/me`, { headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < PER_USER; i += 1) {
      const answer = await me(firstToken);
      expect(answer.status, `request #${i + 1}: ${answer.text}`).to.equal(200);
      expect(integerHeader(answer, 'ratelimit-limit'), `request #${i + 1}`).to.equal(PER_USER);
      expect(integerHeader(answer, 'ratelimit-remaining'), `request #${i + 1}`).to.equal(PER_USER - 1 - i);
    }
    expectRateLimited(await me(firstToken), PER_USER, 3600, `request #${PER_USER + 1}`);
    // A new session of the same user does not reset it; another user on the same IP is unaffected.
    expectRateLimited(await me((await loginTokens(api, first)).accessToken), PER_USER, 3600, 'a new session of the same user');
    expect((await me(secondToken)).status, 'another user').to.equal(200);
    expect((await request(`${api.url}/api/me`)).status, 'anonymous from the same IP').to.equal(401);
  });
});
