import { expect } from 'chai';
import { randomBytes, randomInt } from 'node:crypto';
import { generate, verify } from 'otplib';
import type { Role } from '../../shared/accounts/index.js';
import type { RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, postJson, startTestApi, startTestAuditWorker, type TestApi, type TestUser } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * Issue acceptance: MFA enrolment, login with TOTP, recovery code single use, replay refused, REQUIRE_MFA
 * enforcement.
 *
 * Time steps: the server accepts a TOTP code of its current 30-second step and of one step either side, and only for
 * a step newer than the last one it accepted for that account. Tests never sleep: they enrol with the code of the
 * current step S and log in with the code of step S + 1 (generated with otplib's `epoch` option), which the server
 * accepts whether it is still in S or has moved on to S + 1 or S + 2 meanwhile.
 */

const PERIOD_SECONDS = 30;

interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

interface Enrolled extends TestUser {
  secret: string;
  recoveryCodes: string[];
  /** The step whose code confirmed the enrolment (the server's last accepted step for this account). */
  enrolStep: number;
}

const currentStep = (): number => Math.floor(Date.now() / 1000 / PERIOD_SECONDS);
const codeAt = (secret: string, step: number): Promise<string> => generate({ secret, epoch: step * PERIOD_SECONDS });

/** A six-digit code that is valid for none of the steps around now (so it is wrong, not merely old). */
async function wrongCode(secret: string): Promise<string> {
  const step = currentStep();
  const near = new Set(await Promise.all([-2, -1, 0, 1, 2, 3].map((delta) => codeAt(secret, step + delta))));
  for (;;) {
    const candidate = String(randomInt(0, 1_000_000)).padStart(6, '0');
    if (!near.has(candidate)) return candidate;
  }
}

/** A source address of its own (the API trusts X-Forwarded-For from loopback), so IP blocks never leak between tests. */
const freshIp = (): string => `10.${randomBytes(3).join('.')}`;

/** RFC 4648 base32 without padding, as otplib's secrets are. */
function base32Decode(text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const char of text.replace(/=+$/, '')) {
    const index = alphabet.indexOf(char);
    if (index < 0) throw new Error(`not base32: ${char}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** Speaks to one API as one client address. */
class Client {
  readonly ip = freshIp();
  constructor(private readonly api: TestApi) {}

  private headers(token?: string): Record<string, string> {
    return { 'x-forwarded-for': this.ip, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) };
  }

  post(path: string, body: unknown, token?: string): Promise<Reply> {
    return postJson(`${this.api.url}${path}`, body, this.headers(token));
  }

  async get(path: string, token?: string): Promise<Reply> {
    const response = await fetch(`${this.api.url}${path}`, { headers: this.headers(token) });
    const text = await response.text();
    return { status: response.status, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>), headers: response.headers };
  }

  login(user: { email: string; password: string }, totp?: string): Promise<Reply> {
    return this.post('/auth/login', { email: user.email, password: user.password, ...(totp === undefined ? {} : { totp }) });
  }

  /** Logs in and returns the access token; fails the test unless the answer is 200. */
  async token(user: { email: string; password: string }, totp?: string): Promise<string> {
    const reply = await this.login(user, totp);
    expect(reply.status, JSON.stringify(reply.body)).to.equal(200);
    expect(reply.body.accessToken).to.be.a('string');
    return String(reply.body.accessToken);
  }
}

/** setup + verify with the current step's code; returns the secret, the recovery codes and the step used. */
async function enrol(client: Client, user: TestUser): Promise<Enrolled> {
  const token = await client.token(user);
  const setup = await client.post('/auth/mfa/setup', {}, token);
  expect(setup.status, JSON.stringify(setup.body)).to.equal(200);
  const secret = String(setup.body.secret);
  const enrolStep = currentStep();
  const verified = await client.post('/auth/mfa/verify', { code: await codeAt(secret, enrolStep) }, token);
  expect(verified.status, JSON.stringify(verified.body)).to.equal(200);
  const recoveryCodes = verified.body.recoveryCodes as string[];
  return { ...user, secret, recoveryCodes, enrolStep };
}

/** The step after the enrolment one (and at least the current one): fresh for the server, and inside its window. */
function freshStepAfter(enrolled: Enrolled): number {
  const step = Math.max(currentStep(), enrolled.enrolStep + 1);
  if (step > currentStep() + 1) throw new Error('no fresh step inside the window (the clock went backwards?)');
  return step;
}

function expectError(reply: Reply, status: number, code: string): void {
  expect({ status: reply.status, error: reply.body.error }, JSON.stringify(reply.body)).to.deep.equal({ status, error: code });
}

describe('auth: MFA (TOTP enrolment and login, recovery codes, REQUIRE_MFA)', function () {
  this.timeout(60_000);
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let strictApi: TestApi | undefined;
  let auditWorker: RunningWorkers | undefined;

  const db = (): TestDatabase => {
    if (database === undefined) throw new Error('no test database');
    return database;
  };
  const mainApi = (): TestApi => {
    if (api === undefined) throw new Error('no API');
    return api;
  };
  const newUser = (role: Role = 'user', target: TestApi = mainApi()): Promise<TestUser> => createTestUser(target.config, { role });
  const userRow = async (id: string): Promise<Record<string, unknown>> => {
    const row = await db().ownerDb('users').where({ id }).first<Record<string, unknown> | undefined>();
    if (row === undefined) throw new Error(`no users row ${id}`);
    return row;
  };

  before(async function () {
    database = await createTestDatabase();
    const common = { BOTSERVER_TRUST_PROXY: 'loopback', BOTSERVER_RATE_LIMIT_PER_IP: '100000', BOTSERVER_RATE_LIMIT_PER_USER: '100000' };
    const config = apiTestConfig(database.url, common); // BOTSERVER_REQUIRE_MFA left at its default
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    auditWorker = await startTestAuditWorker(config, prefix);
    // Same database, its own keys (so its own accounts); audit off, as no worker drains its queue.
    strictApi = await startTestApi(apiTestConfig(database.url, { ...common, BOTSERVER_REQUIRE_MFA: 'true', BOTSERVER_ENABLE_AUDIT: 'false' }));
  });

  after(async function () {
    await auditWorker?.shutdown();
    await strictApi?.stop();
    await api?.stop();
    await database?.destroy();
  });

  describe('enrolment', () => {
    it('setup answers the secret and an otpauth URL, and stores the secret encrypted only', async () => {
      const client = new Client(mainApi());
      const user = await newUser();
      const token = await client.token(user);
      const setup = await client.post('/auth/mfa/setup', {}, token);
      expect(setup.status, JSON.stringify(setup.body)).to.equal(200);
      expect(Object.keys(setup.body).sort()).to.deep.equal(['otpauthUrl', 'secret']);
      const secret = String(setup.body.secret);
      expect(secret).to.match(/^[A-Z2-7]{32,}$/); // base32 of at least 160 bits

      const url = new URL(String(setup.body.otpauthUrl));
      expect(url.protocol).to.equal('otpauth:');
      expect(String(setup.body.otpauthUrl)).to.match(/^otpauth:\/\/totp\//);
      expect(url.searchParams.get('secret')).to.equal(secret);
      expect(url.searchParams.get('issuer')).to.equal('botserver');
      expect(decodeURIComponent(url.pathname)).to.include(user.email);

      const row = await userRow(user.id);
      expect(row.totp_secret_ciphertext).to.be.a('string').and.not.equal('');
      expect(row.mfa_enabled).to.equal(false);
      const raw = base32Decode(secret);
      const stored = JSON.stringify(row);
      for (const form of [secret, secret.toLowerCase(), raw.toString('hex'), raw.toString('base64'), raw.toString('base64url')]) {
        expect(stored, 'the users row must not hold the TOTP secret').not.to.include(form);
      }
      // Not yet enabled: logging in still needs the password only.
      await client.token(user);
    });

    it('verify refuses a wrong code (400 invalid_code), then enables MFA with 10 distinct recovery codes; setup again is 409', async () => {
      const client = new Client(mainApi());
      const user = await newUser();
      const token = await client.token(user);
      const setup = await client.post('/auth/mfa/setup', {}, token);
      expect(setup.status).to.equal(200);
      const secret = String(setup.body.secret);

      expectError(await client.post('/auth/mfa/verify', { code: await wrongCode(secret) }, token), 400, 'invalid_code');
      expectError(await client.post('/auth/mfa/verify', { code: 'not-a-code' }, token), 400, 'invalid_code');
      expect((await client.get('/api/me', token)).body.mfa).to.equal(false);

      const verified = await client.post('/auth/mfa/verify', { code: await codeAt(secret, currentStep()) }, token);
      expect(verified.status, JSON.stringify(verified.body)).to.equal(200);
      const codes = verified.body.recoveryCodes;
      expect(codes).to.be.an('array').with.length(10);
      const list = codes as unknown[];
      for (const code of list) expect(code).to.be.a('string').with.length.above(7);
      expect(new Set(list).size).to.equal(10);

      const me = await client.get('/api/me', token);
      expect(me.status).to.equal(200);
      expect(me.body.mfa).to.equal(true);
      expect((await userRow(user.id)).mfa_enabled).to.equal(true);

      expectError(await client.post('/auth/mfa/setup', {}, token), 409, 'mfa_already_enabled');
      expectError(await client.post('/auth/mfa/verify', { code: await codeAt(secret, currentStep() + 1) }, token), 409, 'mfa_already_enabled');
    });

    it('two concurrent verifies (valid codes of two steps) enable MFA once, and the recovery codes handed out are the stored ones', async () => {
      // When the older step is checked first both codes pass the TOTP check; only one request may then enable MFA.
      for (let race = 0; race < 4; race += 1) {
        const client = new Client(mainApi());
        const user = await newUser();
        const token = await client.token(user);
        const secret = String((await client.post('/auth/mfa/setup', {}, token)).body.secret);
        const step = currentStep();
        const replies = await Promise.all([step, step + 1].map(async (at) => client.post('/auth/mfa/verify', { code: await codeAt(secret, at) }, token)));
        const winners = replies.filter((reply) => reply.status === 200);
        expect(replies.map((reply) => reply.status), JSON.stringify(replies.map((reply) => reply.body))).to.satisfy(
          (statuses: number[]) => winners.length === 1 && statuses.every((status) => [200, 400, 409].includes(status)),
        );
        const codes = winners[0]?.body.recoveryCodes as string[];
        const stored = (await userRow(user.id)).mfa_recovery_codes as string[];
        expect(stored).to.have.length(10);
        await client.token(user, codes[race % codes.length]);
      }
    });

    it('verify before setup is refused', async () => {
      const client = new Client(mainApi());
      const user = await newUser();
      const token = await client.token(user);
      const reply = await client.post('/auth/mfa/verify', { code: '123456' }, token);
      expect(reply.status).to.equal(409);
      expect((await userRow(user.id)).mfa_enabled).to.equal(false);
    });

    it('records auth.mfa audit events for setup, a failed verify and the enabling', async () => {
      const client = new Client(mainApi());
      const user = await newUser();
      const token = await client.token(user);
      const setup = await client.post('/auth/mfa/setup', {}, token);
      const secret = String(setup.body.secret);
      await client.post('/auth/mfa/verify', { code: await wrongCode(secret) }, token);
      expect((await client.post('/auth/mfa/verify', { code: await codeAt(secret, currentStep()) }, token)).status).to.equal(200);

      type AuditRow = { type: string; outcome: string; details: { step?: string; reason?: string } };
      // The audit worker appends asynchronously: poll (up to 20 s) until the three events are in the chain.
      const mfaEvents = (): Promise<AuditRow[]> =>
        db().ownerDb('audit_events').where({ type: 'auth.mfa', actor: user.id }).orderBy('id').select<AuditRow[]>('type', 'outcome', 'details');
      const deadline = Date.now() + 20_000;
      let rows = await mfaEvents();
      while (rows.length < 3 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        rows = await mfaEvents();
      }
      expect(rows.map((row) => [row.outcome, row.details.step])).to.deep.equal([
        ['success', 'setup'],
        ['failure', 'verify'],
        ['success', 'enabled'],
      ]);
      expect(rows[1]?.details.reason).to.equal('invalid_code');
    });
  });

  describe('login with a second factor', () => {
    it('without totp answers 401 mfa_required; with a fresh TOTP code 200', async () => {
      const client = new Client(mainApi());
      const user = await enrol(client, await newUser());
      expectError(await client.login(user), 401, 'mfa_required');
      expectError(await client.login(user, ''), 401, 'mfa_required');
      const token = await client.token(user, await codeAt(user.secret, freshStepAfter(user)));
      expect((await client.get('/api/me', token)).body.mfa).to.equal(true);
    });

    it('a TOTP code is used once: the same code again, the enrolment code and older steps are refused', async () => {
      const client = new Client(mainApi());
      const user = await enrol(client, await newUser());
      // The enrolment code (its step already used) cannot log in.
      expectError(await client.login(user, await codeAt(user.secret, user.enrolStep)), 401, 'invalid_credentials');
      const step = freshStepAfter(user);
      const code = await codeAt(user.secret, step);
      await client.token(user, code);
      // Replay within the window: the same code is still valid for the clock but already spent.
      expect((await verify({ secret: user.secret, token: code, epochTolerance: PERIOD_SECONDS })).valid).to.equal(true);
      expectError(await client.login(user, code), 401, 'invalid_credentials');
      for (const older of [step - 1, step - 2]) {
        expectError(await client.login(user, await codeAt(user.secret, older)), 401, 'invalid_credentials');
      }
    });

    it('two concurrent logins with the same TOTP code: exactly one succeeds', async () => {
      const client = new Client(mainApi());
      const user = await enrol(client, await newUser());
      const code = await codeAt(user.secret, freshStepAfter(user));
      const replies = await Promise.all([client.login(user, code), client.login(user, code)]);
      expect(replies.map((reply) => reply.status).sort()).to.deep.equal([200, 401]);
    });

    it('a wrong code counts as a failed login: the account locks (423) and then refuses a valid code too', async () => {
      const client = new Client(mainApi());
      const user = await enrol(client, await newUser());
      const max = mainApi().config.maxLoginAttempts;
      // mfa_required is not a failure: it does not move the counter.
      expectError(await client.login(user), 401, 'mfa_required');
      for (let attempt = 1; attempt < max; attempt += 1) {
        expectError(await client.login(user, await wrongCode(user.secret)), 401, 'invalid_credentials');
      }
      const locking = await client.login(user, await wrongCode(user.secret));
      expectError(locking, 423, 'account_locked');
      expect(Number(locking.headers.get('retry-after'))).to.be.above(0);
      expectError(await client.login(user, await codeAt(user.secret, freshStepAfter(user))), 423, 'account_locked');
      expectError(await client.login(user, user.recoveryCodes[0]), 423, 'account_locked');
    });
  });

  describe('recovery codes', () => {
    it('are stored as hashes only', async () => {
      const client = new Client(mainApi());
      const user = await enrol(client, await newUser());
      const row = await userRow(user.id);
      const stored = row.mfa_recovery_codes;
      expect(stored).to.be.an('array').with.length(10);
      // `<kid of the recovery-code key>:<HMAC-SHA256>`: the kid tells which key verifies it after a rotation.
      for (const hash of stored as unknown[]) expect(hash).to.be.a('string').and.match(/^recovery-[0-9a-f]{16}:[0-9a-f]{64}$/);
      const text = JSON.stringify(row).toLowerCase();
      for (const code of user.recoveryCodes) {
        expect(text).not.to.include(code.toLowerCase());
        expect(text).not.to.include(code.replaceAll('-', '').toLowerCase());
      }
    });

    it('one is accepted once in place of totp', async () => {
      const client = new Client(mainApi());
      const user = await enrol(client, await newUser());
      const [first, second] = user.recoveryCodes;
      if (first === undefined || second === undefined) throw new Error('no recovery codes');
      await client.token(user, first);
      expectError(await client.login(user, first), 401, 'invalid_credentials');
      expect((await userRow(user.id)).mfa_recovery_codes).to.have.length(9);
      // The others stay usable.
      await client.token(user, second);
      expect((await userRow(user.id)).mfa_recovery_codes).to.have.length(8);
    });

    it('two concurrent logins with the same recovery code: exactly one succeeds', async () => {
      const client = new Client(mainApi());
      const user = await enrol(client, await newUser());
      // Three races (each loser is one failed login, below the lockout threshold).
      for (const code of user.recoveryCodes.slice(0, 3)) {
        const replies = await Promise.all([client.login(user, code), client.login(user, code)]);
        expect(replies.map((reply) => reply.status).sort()).to.deep.equal([200, 401]);
      }
      expect((await userRow(user.id)).mfa_recovery_codes).to.have.length(7);
    });
  });

  describe('BOTSERVER_REQUIRE_MFA', () => {
    const strict = (): TestApi => {
      if (strictApi === undefined) throw new Error('no strict API');
      return strictApi;
    };

    it('an admin without MFA may only enrol, read /api/me and log out; after enrolment and a TOTP login, POST /api/users works', async () => {
      const client = new Client(strict());
      const admin = await newUser('admin', strict());
      const token = await client.token(admin);
      expectError(await client.post('/api/users', { email: `new-${randomBytes(4).toString('hex')}@example.test`, role: 'user' }, token), 403, 'mfa_enrollment_required');
      const me = await client.get('/api/me', token);
      expect(me.status).to.equal(200);
      expect(me.body.mfa).to.equal(false);

      const setup = await client.post('/auth/mfa/setup', {}, token);
      expect(setup.status, JSON.stringify(setup.body)).to.equal(200);
      const secret = String(setup.body.secret);
      const enrolStep = currentStep();
      const verified = await client.post('/auth/mfa/verify', { code: await codeAt(secret, enrolStep) }, token);
      expect(verified.status, JSON.stringify(verified.body)).to.equal(200);

      const logout = await client.post('/auth/logout', {}, token);
      expect(logout.status).to.equal(204);

      const enrolled: Enrolled = { ...admin, secret, recoveryCodes: verified.body.recoveryCodes as string[], enrolStep };
      expectError(await client.login(enrolled), 401, 'mfa_required');
      const fresh = await client.token(enrolled, await codeAt(secret, freshStepAfter(enrolled)));
      const created = await client.post('/api/users', { email: `new-${randomBytes(4).toString('hex')}@example.test`, role: 'user' }, fresh);
      expect(created.status, JSON.stringify(created.body)).to.equal(201);
    });

    it('an operator without MFA gets 403 mfa_enrollment_required but can reach /api/me, the MFA routes and logout', async () => {
      const client = new Client(strict());
      const operator = await newUser('operator', strict());
      const token = await client.token(operator);
      expectError(await client.post('/api/users', { email: 'x@example.test', role: 'user' }, token), 403, 'mfa_enrollment_required');
      expect((await client.get('/.well-known/jwks.json', token)).status).to.equal(403);
      expect((await client.get('/api/me', token)).status).to.equal(200);
      const setup = await client.post('/auth/mfa/setup', {}, token);
      expect(setup.status).to.equal(200);
      expectError(await client.post('/auth/mfa/verify', { code: await wrongCode(String(setup.body.secret)) }, token), 400, 'invalid_code');
      expect((await client.post('/auth/logout', {}, token)).status).to.equal(204);
      expect((await client.get('/api/me', token)).status).to.equal(401);
    });

    it('a plain user is not forced to enrol', async () => {
      const client = new Client(strict());
      const user = await newUser('user', strict());
      const token = await client.token(user);
      // Refused for the role, not for the missing second factor.
      expectError(await client.post('/api/users', { email: 'x@example.test', role: 'user' }, token), 403, 'forbidden');
      expect((await client.get('/.well-known/jwks.json', token)).status).to.equal(200);
      expect((await client.get('/api/me', token)).status).to.equal(200);
    });

    it('when off (the default) nothing is forced: an admin without MFA can create users', async () => {
      expect(mainApi().config.requireMfa).to.equal(false);
      const client = new Client(mainApi());
      const admin = await newUser('admin');
      const token = await client.token(admin);
      const created = await client.post('/api/users', { email: `new-${randomBytes(4).toString('hex')}@example.test`, role: 'operator' }, token);
      expect(created.status, JSON.stringify(created.body)).to.equal(201);
    });
  });
});
