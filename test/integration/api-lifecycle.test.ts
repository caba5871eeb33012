import { expect } from 'chai';
import { useTestDatabase } from '../helpers/db.js';
import {
  REPO_ROOT, cleanupProcesses, freePort, startCli, startPrivateRedis, waitFor, waitForHttpOk, type EnvOverrides, type PrivateRedis,
  type RunningCli,
} from '../helpers/process.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  body: Record<string, unknown>;
}

async function request(url: string, init: RequestInit = {}): Promise<JsonResponse> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // left empty: the assertions on `body` then fail with the raw text alongside
  }
  return { status: response.status, headers: response.headers, text, body };
}

/** No stack frame, source path or module path may reach a client. */
function expectNoStackTrace(text: string): void {
  expect(text).not.to.match(/\bat \S+ \(/);
  expect(text).not.to.match(/\bat (file:\/\/|\/)\S+:\d+/);
  expect(text).not.to.match(/\.(ts|js|mjs|cjs):\d+/);
  expect(text).not.to.include(REPO_ROOT);
  expect(text).not.to.include('node_modules');
}

/** A running `botserver api` with its own port on a private Redis and a test database. */
async function startApi(env: EnvOverrides): Promise<{ api: RunningCli; base: string }> {
  const port = await freePort();
  const api = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
  const base = `http://127.0.0.1:${port}`;
  await waitForHttpOk(api, `${base}/healthz`);
  return { api, base };
}

function expectCleanOutput(cli: RunningCli): void {
  const output = cli.stdout + cli.stderr;
  expect(output).not.to.match(/unhandled/i);
  expect(output).not.to.include('UnhandledPromiseRejection');
}

describe('api process lifecycle', function () {
  this.timeout(60_000);
  // Registered before the database hooks so that processes stop before their database is dropped.
  after(cleanupProcesses);
  const testDb = useTestDatabase();
  let redisPort: number;
  let redis: PrivateRedis;

  before(async function () {
    redisPort = await freePort();
    redis = await startPrivateRedis(redisPort);
  });
  const env = (): EnvOverrides => ({ DATABASE_URL: testDb().url, REDIS_URL: `redis://127.0.0.1:${redisPort}` });

  describe('a running api', function () {
    let api: RunningCli;
    let base: string;

    before(async function () {
      ({ api, base } = await startApi(env()));
    });

    it('/healthz answers 200 {status:"ok"} without X-Powered-By', async () => {
      const response = await request(`${base}/healthz`);
      expect(response.status).to.equal(200);
      expect(response.body).to.deep.equal({ status: 'ok' });
      expect(response.headers.has('x-powered-by')).to.equal(false);
    });

    it('/readyz answers 200 with redis and postgres up', async () => {
      const response = await request(`${base}/readyz`);
      expect(response.status, response.text).to.equal(200);
      expect(response.body).to.include({ redis: 'up', postgres: 'up' });
    });

    for (const path of ['/', '/auth/login', '/api/bots', '/healthz', '/no/such/route']) {
      it(`a malformed JSON body to ${path} → 400 invalid_json without a stack trace`, async () => {
        const response = await request(`${base}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"email": "a@b.c", ',
        });
        expect(response.status, response.text).to.equal(400);
        expect(Object.keys(response.body).sort()).to.deep.equal(['error', 'message', 'requestId']);
        expect(response.body.error).to.equal('invalid_json');
        expect(response.body.message).to.be.a('string').that.is.not.empty;
        expect(response.body.requestId).to.equal(response.headers.get('x-request-id'));
        expectNoStackTrace(response.text);
        expect(response.headers.has('x-powered-by')).to.equal(false);
      });
    }

    it('an unknown route → 404 not_found', async () => {
      const response = await request(`${base}/no/such/route`);
      expect(response.status).to.equal(404);
      expect(response.body.error).to.equal('not_found');
      expect(response.body.message).to.be.a('string');
      expect(response.body.requestId).to.match(UUID);
      expect(response.headers.has('x-powered-by')).to.equal(false);
      expectNoStackTrace(response.text);
    });

    it('echoes a well-formed X-Request-Id', async () => {
      const id = 'client-req.0001_ab';
      const response = await request(`${base}/no/such/route`, { headers: { 'x-request-id': id } });
      expect(response.headers.get('x-request-id')).to.equal(id);
      expect(response.body.requestId).to.equal(id);
    });

    for (const [title, id] of [
      ['with spaces', 'not a safe id'],
      ['of 200 characters', 'a'.repeat(200)],
      ['with markup', '<script>alert(1)</script>'],
    ] as const) {
      it(`replaces an X-Request-Id ${title}`, async () => {
        const response = await request(`${base}/no/such/route`, { headers: { 'x-request-id': id } });
        const echoed = response.headers.get('x-request-id');
        expect(echoed).to.not.equal(id);
        expect(echoed).to.match(UUID);
        expect(response.body.requestId).to.equal(echoed);
      });
    }

    it('/readyz turns 503 (redis down) when Redis dies, /healthz stays 200, and recovers when Redis returns', async () => {
      const pid = api.child.pid;
      await redis.stop();
      const down = await waitFor(async () => {
        const response = await request(`${base}/readyz`);
        return response.status === 503 ? response : false;
      }, 10_000, 200);
      expect(down.body).to.include({ redis: 'down', postgres: 'up' });
      const health = await request(`${base}/healthz`);
      expect(health.status).to.equal(200);
      expect(health.body).to.deep.equal({ status: 'ok' });

      redis = await startPrivateRedis(redisPort);
      const up = await waitFor(async () => {
        const response = await request(`${base}/readyz`);
        return response.status === 200 ? response : false;
      }, 15_000, 200);
      expect(up.body).to.include({ redis: 'up', postgres: 'up' });
      expect(api.child.pid).to.equal(pid);
      expect(api.child.exitCode).to.equal(null);
    });

    it('exits 0 on SIGTERM, with no unhandled rejection in its output', async () => {
      const code = await api.stop('SIGTERM', 10_000);
      expect(code, api.stderr).to.equal(0);
      expectCleanOutput(api);
      const refused = await fetch(`${base}/healthz`).then(
        () => false,
        () => true,
      );
      expect(refused, 'the port still answers after exit').to.equal(true);
    });
  });

  describe('stopping with a signal', function () {
    it('api exits 0 on SIGINT', async () => {
      const { api } = await startApi(env());
      const code = await api.stop('SIGINT', 10_000);
      expect(code, api.stderr).to.equal(0);
      expectCleanOutput(api);
    });

    it('worker all starts and exits 0 on SIGTERM', async () => {
      const worker = startCli(['worker', 'all'], { ...env(), LOG_LEVEL: 'info' });
      await waitFor(() => worker.stdout.includes('workers started') || worker.child.exitCode !== null, 30_000);
      expect(worker.child.exitCode, worker.stderr).to.equal(null);
      const code = await worker.stop('SIGTERM', 10_000);
      expect(code, worker.stderr).to.equal(0);
      expect(worker.stdout).to.include('workers stopped');
      expectCleanOutput(worker);
    });
  });
});
