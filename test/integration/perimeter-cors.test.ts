import { expect } from 'chai';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dropRedisKeys } from '../helpers/redis.js';
import { closeSockets, handshake, setUpChat, type ChatSetup } from '../helpers/perimeter.js';

/**
 * Issue 5 (ASVS V3.4.2, V4.4): CORS answers only the whitelisted origins, each with exactly its own origin and
 * credentials, never `*`; a disallowed origin gets no CORS header at all and its Socket.IO handshake is refused on
 * both transports, even with a valid token.
 */

const ALLOWED = 'https://chat.example.test';
const ALLOWED_LOCAL = 'http://127.0.0.1:3999';
const DISALLOWED = [
  'https://evil.example',
  'null',
  'https://chat.example.test.evil.example',
  'https://evil-chat.example.test',
  'http://chat.example.test',
  'https://chat.example.test:8443',
  'https://CHAT.example.test',
  `${ALLOWED}/`,
];

const varyList = (response: Response): string[] => (response.headers.get('vary') ?? '').split(',').map((item) => item.trim().toLowerCase());

function expectNoCors(response: Response, what: string): void {
  expect(response.headers.get('access-control-allow-origin'), `${what}: ACAO`).to.equal(null);
  expect(response.headers.get('access-control-allow-credentials'), `${what}: ACAC`).to.equal(null);
  expect(response.headers.get('access-control-allow-methods'), `${what}: ACAM`).to.equal(null);
  expect(response.headers.get('access-control-allow-headers'), `${what}: ACAH`).to.equal(null);
}

function expectCorsFor(response: Response, origin: string, what: string): void {
  expect(response.headers.get('access-control-allow-origin'), `${what}: ACAO`).to.equal(origin);
  expect(response.headers.get('access-control-allow-credentials'), `${what}: ACAC`).to.equal('true');
  expect(varyList(response), `${what}: Vary`).to.include('origin');
}

const preflight = (api: TestApi, path: string, origin: string, method = 'POST'): Promise<Response> =>
  fetch(`${api.url}${path}`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
  });

describe('perimeter: CORS and the Socket.IO origin check', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let chat: ChatSetup;
  const prefix = uniqueQueuePrefix();

  before(async function () {
    database = await createTestDatabase();
    api = await startTestApi(apiTestConfig(database.url, { BOTSERVER_ALLOWED_ORIGINS: `${ALLOWED},${ALLOWED_LOCAL}` }), prefix);
    chat = await setUpChat(api);
  });

  afterEach(() => closeSockets());

  after(async function () {
    closeSockets();
    await api?.stop();
    await database?.destroy();
    if (api !== undefined) await dropRedisKeys(api.config.redisUrl, [`${prefix}:*`]);
  });

  describe('HTTP', () => {
    for (const origin of [ALLOWED, ALLOWED_LOCAL]) {
      it(`answers a preflight from the allowed origin ${origin} with exactly that origin and credentials`, async () => {
        const response = await preflight(api, '/api/conversations/00000000-0000-4000-8000-000000000000/messages', origin);
        await response.arrayBuffer();
        expect(response.status).to.equal(204);
        expectCorsFor(response, origin, 'preflight');
        expect(response.headers.get('access-control-allow-methods')).to.be.a('string').that.includes('POST');
        expect(response.headers.get('access-control-allow-headers')?.toLowerCase()).to.equal('authorization,content-type');
        expect(response.headers.get('access-control-max-age')).to.equal('600');
      });
    }

    it('answers simple and credentialed requests from an allowed origin (success and error alike) with that origin', async () => {
      const health = await fetch(`${api.url}/healthz`, { headers: { origin: ALLOWED } });
      await health.arrayBuffer();
      expect(health.status).to.equal(200);
      expectCorsFor(health, ALLOWED, 'GET /healthz');
      const me = await fetch(`${api.url}/api/me`, { headers: { origin: ALLOWED, authorization: `Bearer ${chat.accessToken}` } });
      await me.arrayBuffer();
      expect(me.status).to.equal(200);
      expectCorsFor(me, ALLOWED, 'GET /api/me');
      const refused = await fetch(`${api.url}/api/me`, { headers: { origin: ALLOWED } });
      await refused.arrayBuffer();
      expect(refused.status).to.equal(401);
      expectCorsFor(refused, ALLOWED, 'GET /api/me without a token');
    });

    for (const origin of DISALLOWED) {
      it(`gives the disallowed origin ${JSON.stringify(origin)} no CORS header at all, on a preflight and on a request`, async () => {
        const pre = await preflight(api, '/api/me', origin, 'GET');
        await pre.arrayBuffer();
        expectNoCors(pre, 'preflight');
        // The answer depends on Origin, so caches must keep them apart.
        expect(varyList(pre), 'preflight Vary').to.include('origin');
        const get = await fetch(`${api.url}/api/me`, { headers: { origin, authorization: `Bearer ${chat.accessToken}` } });
        await get.arrayBuffer();
        expectNoCors(get, 'GET /api/me');
        expect(varyList(get), 'GET Vary').to.include('origin');
      });
    }

    it('never sends a wildcard, with or without an Origin header, on any route', async () => {
      const cases: Array<{ path: string; origin?: string }> = [];
      for (const path of ['/healthz', '/', '/api/me', '/no/such/route', '/socket.io/?EIO=4&transport=polling']) {
        cases.push({ path });
        for (const origin of [ALLOWED, ...DISALLOWED]) cases.push({ path, origin });
      }
      for (const { path, origin } of cases) {
        const response = await fetch(`${api.url}${path}`, { headers: origin === undefined ? {} : { origin } });
        await response.arrayBuffer();
        const acao = response.headers.get('access-control-allow-origin');
        expect(acao, `${path} from ${String(origin)}`).not.to.equal('*');
        expect(acao, `${path} from ${String(origin)}`).to.be.oneOf(origin === ALLOWED ? [ALLOWED] : [null]);
      }
    });
  });

  describe('Socket.IO', () => {
    it('refuses the engine handshake of a disallowed origin with 403 and no CORS header; answers an allowed one', async () => {
      const refused = await fetch(`${api.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: 'https://evil.example' } });
      await refused.arrayBuffer();
      expect(refused.status).to.equal(403);
      expect(refused.headers.get('access-control-allow-origin')).to.equal(null);
      const allowed = await fetch(`${api.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: ALLOWED } });
      const body = await allowed.text();
      expect(allowed.status).to.equal(200);
      expect(allowed.headers.get('access-control-allow-origin')).to.equal(ALLOWED);
      expect(body).to.match(/^0\{"sid":/);
    });

    it('gives a preflight to /socket.io from a disallowed origin no CORS header, and an allowed one its origin', async () => {
      const refused = await preflight(api, '/socket.io/?EIO=4&transport=polling', 'https://evil.example');
      await refused.arrayBuffer();
      expectNoCors(refused, 'disallowed preflight');
      const allowed = await preflight(api, '/socket.io/?EIO=4&transport=polling', ALLOWED);
      await allowed.arrayBuffer();
      expect(allowed.status).to.equal(204);
      expectCorsFor(allowed, ALLOWED, 'allowed preflight');
    });

    for (const transport of ['polling', 'websocket'] as const) {
      for (const origin of ['https://evil.example', 'null', 'https://chat.example.test.evil.example']) {
        it(`refuses a ${transport} handshake from ${origin} even with a valid token`, async () => {
          const result = await handshake(api.url, { transport, origin, token: chat.accessToken });
          expect(result.connected, 'connected').to.equal(false);
          // Refused by the transport (HTTP 403), before the token is even looked at.
          if (!result.connected) expect(result.message).to.be.oneOf(['xhr poll error', 'websocket error']);
        });
      }

      it(`connects a ${transport} client from an allowed origin with a valid token, and it may join its conversation`, async () => {
        const result = await handshake(api.url, { transport, origin: ALLOWED, token: chat.accessToken });
        expect(result.connected, result.connected ? '' : result.message).to.equal(true);
        if (!result.connected) return;
        const ack = (await result.socket.timeout(10_000).emitWithAck('conversation:join', { conversationId: chat.conversationId })) as { ok: boolean };
        expect(ack).to.deep.equal({ ok: true });
      });

      it(`still refuses a ${transport} client from an allowed origin without a token (unauthorized)`, async () => {
        const result = await handshake(api.url, { transport, origin: ALLOWED });
        expect(result.connected).to.equal(false);
        if (!result.connected) expect(result.message).to.equal('unauthorized');
      });
    }

    it('connects a non-browser client that sends no Origin but a valid token (the token is its credential)', async () => {
      const result = await handshake(api.url, { transport: 'websocket', token: chat.accessToken });
      expect(result.connected, result.connected ? '' : result.message).to.equal(true);
    });
  });
});
