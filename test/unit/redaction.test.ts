import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import fc from 'fast-check';
import winston from 'winston';
import { generateHexKey } from '../../shared/config/index.js';
import { REDACTED, addSecretValues, configureLogger, log } from '../../shared/log/index.js';

/** Every string anywhere inside a parsed log entry, keys included. */
function allStrings(value: unknown, into: string[] = []): string[] {
  if (typeof value === 'string') into.push(value);
  else if (Array.isArray(value)) for (const item of value) allStrings(item, into);
  else if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      into.push(key);
      allStrings(inner, into);
    }
  }
  return into;
}

function base64url(value: string): string {
  return Buffer.from(value).toString('base64url');
}

function fakeJwt(subject: string): string {
  return `${base64url('{"alg":"RS256","typ":"JWT"}')}.${base64url(JSON.stringify({ sub: subject, exp: 1 }))}.${randomBytes(64).toString('base64url')}`;
}

interface Captured {
  raw: string;
  entries: Array<Record<string, unknown>>;
}

describe('log redaction (the real winston logger)', () => {
  const lines: string[] = [];
  const jwtSecret = generateHexKey();
  const encryptionKey = generateHexKey();
  const databaseEncryptionKey = generateHexKey();

  before(() => {
    configureLogger({ level: 'debug', service: 'redaction-test', secretValues: [jwtSecret, encryptionKey, databaseEncryptionKey] });
    // Only our capture transport: nothing reaches the console, and the test sees exactly what a transport writes.
    log.clear();
    log.add(
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk: Buffer | string, _encoding, callback) {
            lines.push(String(chunk));
            callback();
          },
        }),
      }),
    );
  });

  after(() => {
    configureLogger({ level: process.env.LOG_LEVEL ?? 'info' });
  });

  /** Runs `action`, then returns the lines it wrote (raw and parsed). */
  async function capture(action: () => void): Promise<Captured> {
    const start = lines.length;
    action();
    for (let tick = 0; tick < 20 && lines.length === start; tick += 1) await new Promise((resolve) => setImmediate(resolve));
    const written = lines.slice(start);
    expect(written, 'the logger wrote nothing').to.not.be.empty;
    return { raw: written.join(''), entries: written.map((line) => JSON.parse(line) as Record<string, unknown>) };
  }

  function expectHidden(captured: Captured, secrets: string[]): void {
    const strings = captured.entries.flatMap((entry) => allStrings(entry));
    for (const secret of secrets) {
      expect(captured.raw, `raw output shows ${secret}`).to.not.include(secret);
      for (const text of strings) expect(text, `a field shows ${secret}`).to.not.include(secret);
    }
  }

  it('hides credentials, tokens, cookies, message text and keys in one structured entry, and keeps the rest', async () => {
    const password = `pw-${randomBytes(9).toString('hex')}`;
    const bearer = randomBytes(24).toString('base64url');
    const cookie = `sid=s%3A${randomBytes(16).toString('hex')}`;
    const messageText = `my diagnosis is ${randomBytes(6).toString('hex')}`;
    const refreshToken = randomBytes(32).toString('base64url');
    const jwt = fakeJwt('user-1');
    const error = new Error(`token rejected: ${jwt}`);
    const nested: Record<string, unknown> = {
      requestId: 'req-visible-42',
      userId: 'user-visible-7',
      path: '/auth/login',
      status: 401,
      body: { email: 'alice@example.com', password },
      headers: { authorization: `Bearer ${bearer}`, cookie, 'user-agent': 'mocha-visible' },
      chat: { conversationId: 'conv-visible-9', text: messageText },
      session: { refreshToken, refresh_token: refreshToken },
      list: [{ name: 'first-visible', newPassword: password }, [{ apiKey: encryptionKey, kind: 'deep-visible' }]],
      note: `configured with ${databaseEncryptionKey}`,
      blob: Buffer.from(messageText),
      error,
    };
    nested.self = nested;
    (nested.list as unknown[]).push(nested);

    const captured = await capture(() => log.warn(`login failed, key ${jwtSecret} in free text`, nested));
    expectHidden(captured, [password, bearer, cookie, messageText, refreshToken, jwt, jwtSecret, encryptionKey, databaseEncryptionKey]);

    const [entry] = captured.entries;
    expect(entry).to.include({ requestId: 'req-visible-42', userId: 'user-visible-7', path: '/auth/login', status: 401, level: 'warn' });
    expect(entry?.message).to.equal(`login failed, key ${REDACTED} in free text`);
    expect(entry?.headers).to.deep.equal({ authorization: REDACTED, cookie: REDACTED, 'user-agent': 'mocha-visible' });
    for (const visible of ['conv-visible-9', 'first-visible', 'deep-visible', 'token rejected:', '[Circular]']) {
      expect(captured.raw).to.include(visible);
    }
    expect(entry?.blob).to.equal(REDACTED);
  });

  it('hides a JWT in the message and stack of a logged Error, however it is passed', async () => {
    const jwt = fakeJwt('user-2');
    const make = (): Error => new Error(`verify failed for ${jwt}`);
    const asMessage = await capture(() => log.error(make()));
    const asMeta = await capture(() => log.error('request failed', make()));
    const asField = await capture(() => log.error('request failed', { cause: make(), requestId: 'req-err-1' }));
    for (const captured of [asMessage, asMeta, asField]) {
      expectHidden(captured, [jwt, jwt.split('.')[2] ?? jwt]);
      expect(captured.raw).to.include('verify failed for');
    }
    expect(asField.entries[0]?.requestId).to.equal('req-err-1');
  });

  it('hides bearer and basic credentials written in free text', async () => {
    const token = randomBytes(20).toString('hex');
    const basic = Buffer.from(`admin:${randomBytes(6).toString('hex')}`).toString('base64');
    const captured = await capture(() => log.info(`upstream sent Authorization: Bearer ${token} then Basic ${basic}`));
    expectHidden(captured, [token, basic]);
    expect(captured.entries[0]?.message).to.equal(`upstream sent Authorization: Bearer ${REDACTED} then Basic ${REDACTED}`);
  });

  it('hides a PEM private key inside a string, in any PEM flavour, keeping the text around it', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString().trim();
    const pkcs1 = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
    const escaped = pkcs8.replace(/\n/g, '\\n');
    const captured = await capture(() => {
      log.info(`loaded signing key ${pkcs8} from disk`);
      log.info('config dump', { jwtPrivateKeyPem: pkcs1, settings: [{ pem: escaped }] });
    });
    const bodyLines = [...pkcs8.split('\n'), ...pkcs1.split('\n')].filter((line) => line.length > 20 && !line.startsWith('-----'));
    expect(bodyLines.length).to.be.greaterThan(5);
    expectHidden(captured, bodyLines);
    expect(captured.raw).to.not.match(/BEGIN (RSA )?PRIVATE KEY/);
    expect(captured.entries[0]?.message).to.equal(`loaded signing key ${REDACTED} from disk`);
  });

  it('hides a configured hex key in upper case and mixed case too', async () => {
    const upper = encryptionKey.toUpperCase();
    const mixed = [...databaseEncryptionKey].map((char, index) => (index % 2 === 0 ? char.toUpperCase() : char)).join('');
    expect(upper).to.not.equal(encryptionKey);
    const captured = await capture(() => log.info(`ENCRYPTION=${upper} DB=${mixed}`, { copy: upper }));
    expectHidden(captured, [upper, mixed, encryptionKey, databaseEncryptionKey, upper.slice(0, 40)]);
    expect(captured.entries[0]?.message).to.equal(`ENCRYPTION=${REDACTED} DB=${REDACTED}`);
  });

  it('hides values registered after start (addSecretValues)', async () => {
    const late = `late-secret-${randomBytes(8).toString('hex')}`;
    addSecretValues([late]);
    const captured = await capture(() => log.info(`rotated to ${late}`, { where: [late] }));
    expectHidden(captured, [late]);
  });

  it('property: random secret strings (8+ characters) registered as secret values never appear, wherever they are embedded', async () => {
    const secretArb = fc.oneof(fc.string({ minLength: 8, maxLength: 40 }), fc.string({ unit: 'binary', minLength: 8, maxLength: 40 }));
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(secretArb, { minLength: 1, maxLength: 3 }),
        fc.array(fc.string({ maxLength: 20 }), { minLength: 1, maxLength: 4 }),
        async (secrets, pieces) => {
          configureLogger({ level: 'debug', service: 'redaction-test', secretValues: secrets });
          log.clear();
          const sink: string[] = [];
          log.add(
            new winston.transports.Stream({
              stream: new Writable({
                write(chunk: Buffer | string, _encoding, callback) {
                  sink.push(String(chunk));
                  callback();
                },
              }),
            }),
          );
          const text = pieces.map((piece, index) => `${piece}${secrets[index % secrets.length] ?? ''}`).join(' ');
          // Two entries: winston treats a message with %-tokens as a format string and then leaves metadata out.
          log.info(text);
          log.info('property entry', { note: text, nested: { list: [text, { detail: text }] }, marker: 'visible-marker' });
          for (let tick = 0; tick < 20 && sink.length < 2; tick += 1) await new Promise((resolve) => setImmediate(resolve));
          expect(sink).to.have.length(2);
          const raw = sink.join('');
          const strings = sink.flatMap((line) => allStrings(JSON.parse(line)));
          for (const secret of secrets) {
            expect(raw).to.not.include(secret);
            for (const value of strings) expect(value).to.not.include(secret);
          }
          expect(raw).to.include('visible-marker');
        },
      ),
      { numRuns: 200 },
    );
  });
});
