import { expect } from 'chai';
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, type JsonWebKey, type KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import { apiTestConfig, createTestUser, loginTokens, startTestApi, startTestAuditWorker, type TestApi, type TestUser } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { REPO_ROOT } from '../helpers/process.js';
import type { RunningWorkers } from '../../workers/main.js';
import { dropRedisKeys } from '../helpers/redis.js';

/**
 * Issue acceptance, from the outside: every forged, altered, expired or orphaned access token is refused with
 * 401 on GET /api/me, and the JWKS publishes only the public half of the signing key.
 */

interface HttpResult {
  status: number;
  text: string;
  body: Record<string, unknown>;
}

type Claims = Record<string, unknown>;
type Header = Record<string, unknown>;

const nowSeconds = (): number => Math.floor(Date.now() / 1000);
const b64url = (value: string | Buffer): string => Buffer.from(value).toString('base64url');
const json64 = (value: unknown): string => b64url(JSON.stringify(value));

/** `header.payload.signature`, built by hand so nothing (such as a library's own checks) stands between us and the server. */
function compose(header: Header, payload: Claims, signer: (input: string) => Buffer | string): string {
  const input = `${json64(header)}.${json64(payload)}`;
  const signature = signer(input);
  return `${input}.${typeof signature === 'string' ? signature : b64url(signature)}`;
}

const rs256 = (key: KeyObject) => (input: string): Buffer => sign('sha256', Buffer.from(input), key);
const hs256 = (secret: string | Buffer) => (input: string): Buffer => createHmac('sha256', secret).update(input).digest();

async function getMe(url: string, headers: Record<string, string>): Promise<HttpResult> {
  const response = await fetch(`${url}/api/me`, { headers });
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // stays empty; the assertions then show the raw text
  }
  return { status: response.status, text, body };
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** 401 `unauthorized` with exactly {error,message,requestId} and nothing that looks like a stack trace. */
function expectUnauthorized(result: HttpResult, what: string): void {
  expect(result.status, `${what}: status (body ${result.text})`).to.equal(401);
  expect(result.body, what).to.have.all.keys('error', 'message', 'requestId');
  expect(result.body.error, what).to.equal('unauthorized');
  expect(result.body.message, what).to.be.a('string').that.is.not.empty;
  expect(result.body.requestId, what).to.be.a('string').that.is.not.empty;
  expect(result.text, what).not.to.match(/\bat \S+ \(|\.(ts|js):\d+|node_modules|stack/i);
  expect(result.text, what).not.to.include(REPO_ROOT);
}



describe('auth tokens: forged and stale access tokens are refused (GET /api/me)', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  let worker: RunningWorkers;
  let user: TestUser;
  let realKey: KeyObject;
  let kid: string;
  /** A valid access token of `user`, its decoded claims and header. */
  let token: string;
  let claims: Claims;
  let header: Header;
  let prefix: string;

  before(async function () {
    database = await createTestDatabase();
    const config = apiTestConfig(database.url);
    prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    worker = await startTestAuditWorker(config, prefix);
    realKey = createPrivateKey(api.kernel.keys.jwtPrivateKeyPem);
    user = await createTestUser(api.config, { role: 'user' });
    token = (await loginTokens(api, user)).accessToken;
    claims = decodeJwt(token);
    header = decodeProtectedHeader(token);
    expect(header.kid).to.be.a('string');
    kid = String(header.kid);
  });

  after(async function () {
    await api?.stop();
    await worker?.shutdown();
    await database?.destroy();
    if (api !== undefined) await dropRedisKeys(api.config.redisUrl, [`${prefix}:*`]);
  });

  /** The claims of a fresh, otherwise perfectly valid token for `user`'s live session. */
  function validClaims(overrides: Claims = {}): Claims {
    const now = nowSeconds();
    const base: Claims = {
      iss: claims.iss,
      aud: claims.aud,
      sub: claims.sub,
      sid: claims.sid,
      tid: claims.tid,
      roles: claims.roles,
      jti: randomUUID(),
      iat: now,
      exp: now + 300,
    };
    const merged: Claims = { ...base, ...overrides };
    for (const [name, value] of Object.entries(merged)) if (value === undefined) delete merged[name];
    return merged;
  }

  const validHeader = (overrides: Header = {}): Header => ({ alg: 'RS256', kid, typ: 'at+jwt', ...overrides });

  describe('JWKS', () => {
    it('publishes exactly one RS256 signing key with a kid and no private members', async () => {
      const response = await fetch(`${api.url}/.well-known/jwks.json`);
      expect(response.status).to.equal(200);
      const jwks = (await response.json()) as { keys: JWK[] };
      expect(jwks.keys).to.be.an('array').with.lengthOf(1);
      const key = jwks.keys[0] as JWK;
      expect(key.kty).to.equal('RSA');
      expect(key.alg).to.equal('RS256');
      expect(key.use).to.equal('sig');
      expect(key.kid).to.be.a('string').that.is.not.empty;
      expect(key.kid).to.equal(kid);
      expect(key.n).to.be.a('string').that.is.not.empty;
      expect(key.e).to.be.a('string').that.is.not.empty;
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']) expect(key, `member ${member}`).not.to.have.property(member);
      // The published key is the public half of the key the server signs with.
      const published = createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
      expect(published.export({ type: 'spki', format: 'pem' })).to.equal(createPublicKey(realKey).export({ type: 'spki', format: 'pem' }));
    });
  });

  describe('positive controls', () => {
    it('accepts the access token issued at login', async () => {
      const result = await getMe(api.url, bearer(token));
      expect(result.status, result.text).to.equal(200);
      expect(result.body.id).to.equal(user.id);
      expect(result.body.email).to.equal(user.email);
      expect(result.body.roles).to.deep.equal(['user']);
    });

    it('accepts a token built by this test with the real key and valid claims (so the forgeries below differ in one point only)', async () => {
      const forged = compose(validHeader(), validClaims(), rs256(realKey));
      const result = await getMe(api.url, bearer(forged));
      expect(result.status, result.text).to.equal(200);
      expect(result.body.id).to.equal(user.id);
    });
  });

  describe('forged signatures', () => {
    it('refuses alg "none" (unsigned) tokens with valid-looking claims', async () => {
      const realSignature = token.split('.')[2] ?? '';
      for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
        for (const signature of ['', realSignature]) {
          const forged = compose({ alg, typ: 'at+jwt' }, validClaims(), () => signature);
          expectUnauthorized(await getMe(api.url, bearer(forged)), `alg ${alg}, signature ${signature === '' ? 'empty' : 'copied'}`);
          const withKid = compose({ alg, kid, typ: 'at+jwt' }, validClaims(), () => signature);
          expectUnauthorized(await getMe(api.url, bearer(withKid)), `alg ${alg} with the real kid`);
        }
      }
    });

    it('refuses HS256 tokens whose HMAC secret is the published RSA public key (algorithm confusion)', async () => {
      const jwks = (await (await fetch(`${api.url}/.well-known/jwks.json`)).json()) as { keys: JWK[] };
      const publicJwk = jwks.keys[0] as JWK;
      const publicKey = createPublicKey({ key: publicJwk as JsonWebKey, format: 'jwk' });
      const spkiPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const pkcs1Pem = publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
      const secrets: Array<[string, string | Buffer]> = [
        ['SPKI PEM', spkiPem],
        ['SPKI PEM without trailing newline', spkiPem.trimEnd()],
        ['PKCS#1 PEM', pkcs1Pem],
        ['SPKI DER', publicKey.export({ type: 'spki', format: 'der' })],
        ['the JWK as JSON', JSON.stringify(publicJwk)],
      ];
      for (const [name, secret] of secrets) {
        for (const forgedHeader of [{ alg: 'HS256', kid, typ: 'at+jwt' }, { alg: 'HS256', typ: 'at+jwt' }]) {
          const forged = compose(forgedHeader, validClaims(), hs256(secret));
          expectUnauthorized(await getMe(api.url, bearer(forged)), `HS256 keyed with ${name}${forgedHeader.kid === undefined ? '' : ' and the real kid'}`);
        }
      }
    });

    it('refuses a token signed by another RSA key that claims the real kid (also with the attacker key embedded as jwk/jku)', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const attackerJwk = publicKey.export({ format: 'jwk' });
      expectUnauthorized(await getMe(api.url, bearer(compose(validHeader(), validClaims(), rs256(privateKey)))), 'foreign key, real kid');
      expectUnauthorized(await getMe(api.url, bearer(compose(validHeader({ jwk: attackerJwk }), validClaims(), rs256(privateKey)))), 'foreign key embedded as jwk');
      expectUnauthorized(
        await getMe(api.url, bearer(compose(validHeader({ jku: 'http://127.0.0.1:9/jwks.json' }), validClaims(), rs256(privateKey)))),
        'foreign key behind jku',
      );
    });

    it('refuses a token signed with the real key but an unknown kid', async () => {
      for (const wrongKid of ['another-key', `${kid}x`, '']) {
        expectUnauthorized(await getMe(api.url, bearer(compose(validHeader({ kid: wrongKid }), validClaims(), rs256(realKey)))), `kid "${wrongKid}"`);
      }
    });

    it('refuses a valid token whose payload was modified without re-signing (roles: ["admin"])', async () => {
      const [encodedHeader, , signature] = token.split('.');
      const tampered = `${encodedHeader}.${json64({ ...claims, roles: ['admin'] })}.${signature}`;
      expectUnauthorized(await getMe(api.url, bearer(tampered)), 'roles swapped for admin');
      const extended = `${encodedHeader}.${json64({ ...claims, exp: nowSeconds() + 86_400 })}.${signature}`;
      expectUnauthorized(await getMe(api.url, bearer(extended)), 'expiry extended');
      // Nor does the tampered token reach an admin-only route.
      const create = await fetch(`${api.url}/api/users`, {
        method: 'POST',
        headers: { ...bearer(tampered), 'content-type': 'application/json' },
        body: JSON.stringify({ email: 'escalated@example.test', role: 'admin' }),
      });
      expect(create.status).to.equal(401);
      // The untouched token still works: the refusals are about the tampering.
      expect((await getMe(api.url, bearer(token))).status).to.equal(200);
    });
  });

  describe('claims (signed with the real key)', () => {
    it('refuses an expired token', async () => {
      const now = nowSeconds();
      const expired = compose(validHeader(), validClaims({ iat: now - 3600, exp: now - 60 }), rs256(realKey));
      expectUnauthorized(await getMe(api.url, bearer(expired)), 'expired a minute ago');
    });

    it('refuses a token without an expiry', async () => {
      expectUnauthorized(await getMe(api.url, bearer(compose(validHeader(), validClaims({ exp: undefined }), rs256(realKey)))), 'no exp');
    });

    it('refuses a wrong issuer', async () => {
      for (const iss of ['https://evil.example', 'botserver ', undefined]) {
        expectUnauthorized(await getMe(api.url, bearer(compose(validHeader(), validClaims({ iss }), rs256(realKey)))), `iss ${String(iss)}`);
      }
    });

    it('refuses a wrong audience', async () => {
      for (const aud of ['another-api', ['another-api'], undefined]) {
        expectUnauthorized(await getMe(api.url, bearer(compose(validHeader(), validClaims({ aud }), rs256(realKey)))), `aud ${JSON.stringify(aud)}`);
      }
    });

    it('refuses a token without sid, or with a sid that is not a live session', async () => {
      expectUnauthorized(await getMe(api.url, bearer(compose(validHeader(), validClaims({ sid: undefined }), rs256(realKey)))), 'no sid');
      expectUnauthorized(await getMe(api.url, bearer(compose(validHeader(), validClaims({ sid: randomUUID() }), rs256(realKey)))), 'unknown sid');
    });

    it("refuses a token whose sid is another user's session", async () => {
      const other = await createTestUser(api.config, { role: 'user' });
      const otherClaims = decodeJwt((await loginTokens(api, other)).accessToken);
      expectUnauthorized(await getMe(api.url, bearer(compose(validHeader(), validClaims({ sid: otherClaims.sid }), rs256(realKey)))), 'foreign sid');
    });

    it('refuses a token of another type than an access token (typ)', async () => {
      for (const typ of ['JWT', 'id_token', 'guest+jwt', undefined]) {
        expectUnauthorized(await getMe(api.url, bearer(compose(validHeader({ typ }), validClaims(), rs256(realKey)))), `typ ${String(typ)}`);
      }
    });
  });

  describe('sessions and headers', () => {
    it('refuses a correctly signed token once its session was revoked by logout (at the very next request)', async () => {
      const own = await loginTokens(api, user);
      expect((await getMe(api.url, bearer(own.accessToken))).status).to.equal(200);
      const logout = await fetch(`${api.url}/auth/logout`, { method: 'POST', headers: bearer(own.accessToken) });
      expect(logout.status).to.equal(204);
      expectUnauthorized(await getMe(api.url, bearer(own.accessToken)), 'after logout');
      // Only that session ended.
      expect((await getMe(api.url, bearer(token))).status).to.equal(200);
    });

    it('refuses garbage in place of a token', async () => {
      const garbage = [
        'garbage',
        'a.b.c',
        '...',
        'eyJhbGciOiJSUzI1NiJ9',
        'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0',
        `${token.split('.').slice(0, 2).join('.')}.`,
        `${token}.extra`,
        'x'.repeat(10_000),
        "' OR 1=1 --",
        '{"sub":"admin"}',
        '../../etc/passwd',
      ];
      for (const value of garbage) expectUnauthorized(await getMe(api.url, bearer(value)), `garbage ${value.slice(0, 40)}`);
    });

    it('refuses "Bearer" with an empty token and other malformed Authorization headers', async () => {
      for (const value of ['Bearer', 'Bearer ', 'Bearer    ', `Basic ${b64url(`${user.email}:${user.password}`)}`, token, `Token ${token}`, `Bearer ${token} ${token}`]) {
        expectUnauthorized(await getMe(api.url, { authorization: value }), `Authorization: ${value.slice(0, 30)}`);
      }
    });

    it('never believes an X-User-Id header', async () => {
      expectUnauthorized(await getMe(api.url, { 'x-user-id': user.id }), 'X-User-Id alone');
      expectUnauthorized(await getMe(api.url, { 'x-user-id': user.id, 'x-roles': 'admin', 'x-tenant-id': String(claims.tid) }), 'X-User-Id with friends');
      // With a valid token of another user, the token decides who the caller is.
      const other = await createTestUser(api.config, { role: 'user' });
      const otherToken = (await loginTokens(api, other)).accessToken;
      const result = await getMe(api.url, { ...bearer(otherToken), 'x-user-id': user.id });
      expect(result.status).to.equal(200);
      expect(result.body.id).to.equal(other.id);
    });
  });
});
