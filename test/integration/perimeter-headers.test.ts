import { expect } from 'chai';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dropRedisKeys } from '../helpers/redis.js';
import { httpsRequest, makeCertDir, makeSelfSignedCertificate, removeCertDir, type TestCertificate } from '../helpers/tls.js';

/**
 * Issue 5 (ASVS V3.4/V13): every security header with its exact value, the way helmet tests itself. Each header is
 * checked on a success (`/healthz`), the web chat page (`/`), an unknown route (404) and a refused request (401),
 * over plain HTTP and over TLS, where the only differences are HSTS and `upgrade-insecure-requests`.
 */

const CSP_PLAIN = [
  "default-src 'self'",
  "base-uri 'none'",
  "connect-src 'self'",
  "font-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "img-src 'self'",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self'",
].join(';');
const CSP_TLS = `${CSP_PLAIN};upgrade-insecure-requests`;

/** The same on every response, plain or TLS. */
const EXPECTED: ReadonlyArray<readonly [string, string]> = [
  ['Cross-Origin-Opener-Policy', 'same-origin'],
  ['Cross-Origin-Resource-Policy', 'same-origin'],
  ['Origin-Agent-Cluster', '?1'],
  ['Referrer-Policy', 'no-referrer'],
  ['X-Content-Type-Options', 'nosniff'],
  ['X-DNS-Prefetch-Control', 'off'],
  ['X-Download-Options', 'noopen'],
  ['X-Frame-Options', 'DENY'],
  ['X-Permitted-Cross-Domain-Policies', 'none'],
  ['X-XSS-Protection', '0'],
];

const PROBES: ReadonlyArray<{ what: string; path: string; status: number }> = [
  { what: 'GET /healthz', path: '/healthz', status: 200 },
  { what: 'GET / (web chat page)', path: '/', status: 200 },
  { what: 'an unknown route (404)', path: '/no/such/route', status: 404 },
  { what: 'an unauthenticated API call (401)', path: '/api/me', status: 401 },
];

interface Seen {
  what: string;
  /** Lower-case header name → value (undefined when absent). */
  header(name: string): string | undefined;
}

describe('perimeter: security headers', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let plainApi: TestApi;
  let tlsApi: TestApi;
  let certDir: string;
  let cert: TestCertificate;
  const plain: Seen[] = [];
  const overTls: Seen[] = [];
  const prefixes = [uniqueQueuePrefix(), uniqueQueuePrefix()];

  before(async function () {
    database = await createTestDatabase();
    certDir = makeCertDir();
    cert = makeSelfSignedCertificate(certDir);
    plainApi = await startTestApi(apiTestConfig(database.url), prefixes[0]);
    tlsApi = await startTestApi(apiTestConfig(database.url, { BOTSERVER_TLS_CERT: cert.certPath, BOTSERVER_TLS_KEY: cert.keyPath }), prefixes[1]);
    expect(plainApi.url).to.match(/^http:/);
    expect(tlsApi.url).to.match(/^https:/);
    for (const probe of PROBES) {
      const response = await fetch(`${plainApi.url}${probe.path}`);
      await response.arrayBuffer();
      expect(response.status, `plain ${probe.what}`).to.equal(probe.status);
      plain.push({ what: `plain HTTP, ${probe.what}`, header: (name) => response.headers.get(name) ?? undefined });
      const secure = await httpsRequest(`${tlsApi.url}${probe.path}`, cert.pem);
      expect(secure.status, `TLS ${probe.what}`).to.equal(probe.status);
      overTls.push({
        what: `TLS, ${probe.what}`,
        header: (name) => {
          const value = secure.headers[name.toLowerCase()];
          return Array.isArray(value) ? value.join(', ') : value;
        },
      });
    }
  });

  after(async function () {
    await plainApi?.stop();
    await tlsApi?.stop();
    await database?.destroy();
    removeCertDir(certDir);
    if (plainApi !== undefined) await dropRedisKeys(plainApi.config.redisUrl, prefixes.map((prefix) => `${prefix}:*`));
  });

  it(`Content-Security-Policy over plain HTTP: ${CSP_PLAIN}`, () => {
    for (const seen of plain) expect(seen.header('Content-Security-Policy'), seen.what).to.equal(CSP_PLAIN);
  });

  it(`Content-Security-Policy over TLS: ${CSP_TLS}`, () => {
    for (const seen of overTls) expect(seen.header('Content-Security-Policy'), seen.what).to.equal(CSP_TLS);
  });

  it('no upgrade-insecure-requests directive over plain HTTP (it would break a plain-HTTP deployment)', () => {
    for (const seen of plain) expect(seen.header('Content-Security-Policy'), seen.what).not.to.include('upgrade-insecure-requests');
  });

  for (const [name, value] of EXPECTED) {
    it(`${name}: ${value}`, () => {
      for (const seen of [...plain, ...overTls]) expect(seen.header(name), seen.what).to.equal(value);
    });
  }

  it('no X-Powered-By', () => {
    for (const seen of [...plain, ...overTls]) expect(seen.header('X-Powered-By'), seen.what).to.equal(undefined);
  });

  it('no Strict-Transport-Security over plain HTTP', () => {
    for (const seen of plain) expect(seen.header('Strict-Transport-Security'), seen.what).to.equal(undefined);
  });

  it('Strict-Transport-Security over TLS: max-age=31536000; includeSubDomains', () => {
    for (const seen of overTls) expect(seen.header('Strict-Transport-Security'), seen.what).to.equal('max-age=31536000; includeSubDomains');
  });

  it('no Access-Control-Allow-Origin on requests without an Origin', () => {
    for (const seen of [...plain, ...overTls]) {
      expect(seen.header('Access-Control-Allow-Origin'), seen.what).to.equal(undefined);
    }
  });
});
