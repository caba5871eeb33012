import { expect } from 'chai';
import { copyFileSync, writeFileSync } from 'node:fs';
import tls, { type TLSSocket } from 'node:tls';
import { generateJwtPrivateKeyPem } from '../../shared/config/index.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { randomHexKey, testConfig, uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { closeSockets, handshake, httpsJson, setUpChat, type ChatSetup } from '../helpers/perimeter.js';
import { cleanupProcesses, freePort, makeTempDir, startCli, startPrivateRedis, waitFor, type RunningCli } from '../helpers/process.js';
import { dropRedisKeys } from '../helpers/redis.js';
import { httpsRequest, makeCertDir, makeSelfSignedCertificate, removeCertDir, type TestCertificate } from '../helpers/tls.js';

/**
 * Issue 5 (ASVS V12): with BOTSERVER_TLS_CERT/KEY the API and Socket.IO speak only TLS 1.3 by default (TLS 1.2 is
 * refused), TLS 1.2 when allowed uses forward-secret AEAD suites only, and SIGHUP swaps the certificate for new
 * connections without dropping the open ones, in this process and in a `botserver api` child.
 */

type Handshake = { ok: true; socket: TLSSocket; protocol: string | null; cipher: string; fingerprint256: string } | { ok: false; error: Error & { code?: string } };

const openTls = new Set<TLSSocket>();

/** A raw TLS handshake to 127.0.0.1:`port`; resolves when it succeeds or fails (a refusal is an alert: an error). */
function tlsHandshake(port: number, options: tls.ConnectionOptions): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...options });
    openTls.add(socket);
    socket.once('secureConnect', () => {
      socket.removeAllListeners('error');
      socket.on('error', () => undefined);
      resolve({ ok: true, socket, protocol: socket.getProtocol(), cipher: socket.getCipher().name, fingerprint256: socket.getPeerCertificate().fingerprint256 });
    });
    socket.once('error', (error: Error & { code?: string }) => {
      socket.destroy();
      openTls.delete(socket);
      resolve({ ok: false, error });
    });
  });
}

/** Sends one HTTP/1.1 request over an already-open TLS socket and resolves with the raw answer's status line. */
function requestOver(socket: TLSSocket, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let answer = '';
    const onData = (chunk: Buffer): void => {
      answer += chunk.toString('utf8');
      if (answer.includes('\r\n\r\n')) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(answer.slice(0, answer.indexOf('\r\n')));
      }
    };
    const onClose = (): void => reject(new Error(`the connection closed before an answer: ${answer}`));
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  });
}

const portOf = (url: string): number => Number(new URL(url).port);

/** The cipher suites a TLS 1.2 client may get: ECDHE key exchange (forward secrecy) with an AEAD. */
const TLS12_FORWARD_SECRET_AEAD = /^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/;

describe('perimeter: TLS', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let certDir: string;
  let first: TestCertificate;
  let for12: TestCertificate;
  let api13: TestApi;
  let api12: TestApi;
  let chat: ChatSetup;
  const prefixes = [uniqueQueuePrefix(), uniqueQueuePrefix()];

  before(async function () {
    database = await createTestDatabase();
    certDir = makeCertDir();
    first = makeSelfSignedCertificate(certDir, 'api13');
    for12 = makeSelfSignedCertificate(certDir, 'api12');
    api13 = await startTestApi(apiTestConfig(database.url, { BOTSERVER_TLS_CERT: first.certPath, BOTSERVER_TLS_KEY: first.keyPath }), prefixes[0]);
    api12 = await startTestApi(apiTestConfig(database.url, { BOTSERVER_TLS_CERT: for12.certPath, BOTSERVER_TLS_KEY: for12.keyPath, BOTSERVER_TLS_MIN_VERSION: '1.2' }), prefixes[1]);
    chat = await setUpChat(api13, httpsJson(first.pem));
  });

  afterEach(() => {
    closeSockets();
    for (const socket of openTls) socket.destroy();
    openTls.clear();
  });

  after(async function () {
    await api13?.stop();
    await api12?.stop();
    await cleanupProcesses();
    await database?.destroy();
    removeCertDir(certDir);
    if (api13 !== undefined) await dropRedisKeys(api13.config.redisUrl, prefixes.map((prefix) => `${prefix}:*`));
  });

  describe('minimum TLS 1.3 (the default)', () => {
    it('listens on https://', () => {
      expect(api13.url).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(api13.config.tls?.minVersion).to.equal('TLSv1.3');
    });

    it('refuses a TLS 1.2 handshake', async () => {
      const result = await tlsHandshake(portOf(api13.url), { ca: first.pem, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2' });
      expect(result.ok, 'handshake succeeded').to.equal(false);
      if (!result.ok) expect(result.error.code).to.match(/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|HANDSHAKE_FAILURE/);
    });

    it('accepts a TLS 1.3 handshake with the configured certificate', async () => {
      const result = await tlsHandshake(portOf(api13.url), { ca: first.pem, minVersion: 'TLSv1.3' });
      expect(result.ok, result.ok ? '' : result.error.message).to.equal(true);
      if (!result.ok) return;
      expect(result.protocol).to.equal('TLSv1.3');
      expect(result.cipher).to.be.oneOf(['TLS_AES_256_GCM_SHA384', 'TLS_AES_128_GCM_SHA256', 'TLS_CHACHA20_POLY1305_SHA256']);
      expect(result.fingerprint256).to.equal(first.fingerprint256);
    });

    it('serves the API over HTTPS to a client that trusts the certificate, and a client that does not is refused', async () => {
      const health = await httpsRequest(`${api13.url}/healthz`, first.pem);
      expect(health.status).to.equal(200);
      expect(JSON.parse(health.body)).to.deep.equal({ status: 'ok' });
      const me = await httpsRequest(`${api13.url}/api/me`, first.pem, { headers: { authorization: `Bearer ${chat.accessToken}` } });
      expect(me.status).to.equal(200);
      const stranger = makeSelfSignedCertificate(certDir, 'stranger');
      const untrusted = await httpsRequest(`${api13.url}/healthz`, stranger.pem).then(
        () => undefined,
        (error: Error & { code?: string }) => error.code,
      );
      expect(untrusted).to.be.a('string').that.matches(/SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    });

    it('refuses plain HTTP on the TLS port', async () => {
      const answer = await fetch(`http://127.0.0.1:${portOf(api13.url)}/healthz`).then(
        (response) => response.status,
        () => 'refused',
      );
      expect(answer).not.to.equal(200);
    });

    for (const transport of ['websocket', 'polling'] as const) {
      it(`carries Socket.IO over TLS (${transport === 'websocket' ? 'wss' : 'https polling'}): connect with a token, join, get the ack`, async () => {
        const result = await handshake(api13.url, { transport, ca: first.pem, token: chat.accessToken });
        expect(result.connected, result.connected ? '' : result.message).to.equal(true);
        if (!result.connected) return;
        const ack = (await result.socket.timeout(10_000).emitWithAck('conversation:join', { conversationId: chat.conversationId })) as { ok: boolean };
        expect(ack).to.deep.equal({ ok: true });
      });
    }
  });

  describe('minimum TLS 1.2 (BOTSERVER_TLS_MIN_VERSION=1.2)', () => {
    it('accepts TLS 1.2 and negotiates an ECDHE AEAD suite', async () => {
      const result = await tlsHandshake(portOf(api12.url), { ca: for12.pem, maxVersion: 'TLSv1.2' });
      expect(result.ok, result.ok ? '' : result.error.message).to.equal(true);
      if (!result.ok) return;
      expect(result.protocol).to.equal('TLSv1.2');
      expect(result.cipher).to.match(TLS12_FORWARD_SECRET_AEAD);
    });

    for (const cipher of ['AES256-GCM-SHA384', 'AES128-SHA256', 'ECDHE-RSA-AES128-SHA256', 'ECDHE-RSA-AES256-SHA', 'DHE-RSA-AES128-GCM-SHA256']) {
      it(`refuses a TLS 1.2 client that offers only ${cipher} (no forward secrecy or no AEAD)`, async () => {
        const result = await tlsHandshake(portOf(api12.url), { ca: for12.pem, maxVersion: 'TLSv1.2', ciphers: cipher });
        expect(result.ok, 'handshake succeeded').to.equal(false);
      });
    }

    it('still prefers TLS 1.3 when the client offers it', async () => {
      const result = await tlsHandshake(portOf(api12.url), { ca: for12.pem });
      expect(result.ok && result.protocol).to.equal('TLSv1.3');
    });
  });

  describe('certificate reload on SIGHUP', () => {
    it('in this process: new connections get the new certificate, open ones stay up, a broken file keeps the previous one', async () => {
      const port = portOf(api13.url);
      const socket = await handshake(api13.url, { transport: 'websocket', ca: first.pem, token: chat.accessToken });
      expect(socket.connected, socket.connected ? '' : socket.message).to.equal(true);
      if (!socket.connected) return;
      const disconnects: string[] = [];
      socket.socket.on('disconnect', (reason) => disconnects.push(reason));
      const raw = await tlsHandshake(port, { ca: first.pem });
      expect(raw.ok && raw.fingerprint256).to.equal(first.fingerprint256);

      const next = makeSelfSignedCertificate(certDir, 'next');
      copyFileSync(next.keyPath, first.keyPath);
      copyFileSync(next.certPath, first.certPath);
      process.emit('SIGHUP', 'SIGHUP');

      const fresh = await tlsHandshake(port, { ca: next.pem });
      expect(fresh.ok && fresh.fingerprint256, 'a new connection').to.equal(next.fingerprint256);
      expect((await tlsHandshake(port, { ca: first.pem })).ok, 'the old certificate no longer verifies a new connection').to.equal(false);
      expect((await httpsRequest(`${api13.url}/healthz`, next.pem)).fingerprint256).to.equal(next.fingerprint256);

      // Already-open connections keep working on the certificate they started with.
      if (raw.ok) {
        expect(await requestOver(raw.socket, '/healthz')).to.equal('HTTP/1.1 200 OK');
        expect(raw.socket.getPeerCertificate().fingerprint256).to.equal(first.fingerprint256);
      }
      expect(socket.socket.connected).to.equal(true);
      const ack = (await socket.socket.timeout(10_000).emitWithAck('conversation:join', { conversationId: chat.conversationId })) as { ok: boolean };
      expect(ack).to.deep.equal({ ok: true });
      expect(disconnects).to.deep.equal([]);

      // A broken file is not loaded: the server keeps the last good certificate.
      writeFileSync(first.certPath, '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
      process.emit('SIGHUP', 'SIGHUP');
      const afterBroken = await tlsHandshake(port, { ca: next.pem });
      expect(afterBroken.ok && afterBroken.fingerprint256).to.equal(next.fingerprint256);
    });

    it('in a `botserver api` child: kill -HUP swaps the certificate, keeps the process and its open sockets', async function () {
      const childCerts = makeTempDir('botserver-tls-child-');
      const initial = makeSelfSignedCertificate(childCerts, 'server');
      const port = await freePort();
      const keys = {
        BOTSERVER_JWT_SECRET: randomHexKey(),
        BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
        DATABASE_ENCRYPTION_KEY: randomHexKey(),
        BOTSERVER_JWT_PRIVATE_KEY: generateJwtPrivateKeyPem(),
      };
      // A private Redis: the child's queues use the default prefix, which must not mix with anyone else's.
      const redis = await startPrivateRedis(await freePort());
      const env = { ...keys, DATABASE_URL: database.url, REDIS_URL: redis.url, BOTSERVER_TLS_CERT: initial.certPath, BOTSERVER_TLS_KEY: initial.keyPath };
      const cli: RunningCli = startCli(['api'], { ...env, BOTSERVER_PORT: String(port) });
      const url = `https://127.0.0.1:${port}`;
      const alive = (): boolean => cli.child.exitCode === null && cli.child.signalCode === null;
      const started = await waitFor(async () => (alive() ? (await httpsRequest(`${url}/readyz`, initial.pem)).status === 200 && 'ready' : 'exited'), 60_000);
      expect(started, `the api exited: ${cli.stderr}`).to.equal('ready');
      // The same keys here, to make an account the child can read.
      const child = { url, config: testConfig({ ...keys, DATABASE_URL: database.url }) };
      const childChat = await setUpChat(child, httpsJson(initial.pem));
      const socket = await handshake(url, { transport: 'websocket', ca: initial.pem, token: childChat.accessToken });
      expect(socket.connected, socket.connected ? '' : socket.message).to.equal(true);
      if (!socket.connected) return;
      const disconnects: string[] = [];
      socket.socket.on('disconnect', (reason) => disconnects.push(reason));

      const next = makeSelfSignedCertificate(childCerts, 'next');
      copyFileSync(next.keyPath, initial.keyPath);
      copyFileSync(next.certPath, initial.certPath);
      expect(cli.child.kill('SIGHUP')).to.equal(true);
      // The signal is handled asynchronously in the child: poll new connections until they see the new certificate.
      const reloaded = await waitFor(async () => {
        if (!alive()) return 'exited';
        const result = await tlsHandshake(port, { ca: next.pem });
        if (result.ok) result.socket.destroy();
        return result.ok && result.fingerprint256 === next.fingerprint256 && 'reloaded';
      }, 20_000);
      expect(reloaded, `the api exited on SIGHUP: ${cli.stderr}`).to.equal('reloaded');

      expect(alive(), 'the process survives SIGHUP').to.equal(true);
      expect((await httpsRequest(`${url}/healthz`, next.pem)).status).to.equal(200);
      expect(socket.socket.connected).to.equal(true);
      const ack = (await socket.socket.timeout(10_000).emitWithAck('conversation:join', { conversationId: childChat.conversationId })) as { ok: boolean };
      expect(ack).to.deep.equal({ ok: true });
      expect(disconnects).to.deep.equal([]);
      socket.socket.disconnect();
      expect(await cli.stop('SIGTERM', 15_000)).to.equal(0);
      await redis.stop();
    });
  });
});
