/**
 * Issue acceptance: rotating BOTSERVER_JWT_SECRET as the README says (the new secret set, the old one listed in
 * BOTSERVER_PREVIOUS_KEYS) keeps recovery codes working and `audit verify` passing, and refuses the refresh tokens
 * issued before (the documented effect). `botserver keys rotate --check` tells both configurations apart.
 */
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { generate } from 'otplib';
import type { Config } from '../../shared/config/index.js';
import { hmacHex } from '../../shared/crypto/index.js';
import { deriveKey } from '../../shared/keys.js';
import type { RunningWorkers } from '../../workers/main.js';
import { createTestUser, postJson, startTestApi, startTestAuditWorker, type TestApi, type TestUser } from '../helpers/api.js';
import { freshDataDir, randomHexKey, testConfig } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { cleanupProcesses, runCli, sharedSettingsEnv, waitFor, type EnvOverrides } from '../helpers/process.js';
import { emptyRedisDb } from '../helpers/redis.js';

const PERIOD_SECONDS = 30;
const REDIS_SERVER = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');

interface Enrolled extends TestUser {
  recoveryCodes: string[];
}

async function enrol(api: TestApi, user: TestUser): Promise<Enrolled> {
  const login = await postJson(`${api.url}/auth/login`, { email: user.email, password: user.password });
  expect(login.status, JSON.stringify(login.body)).to.equal(200);
  const auth = { authorization: `Bearer ${String(login.body.accessToken)}` };
  const setup = await postJson(`${api.url}/auth/mfa/setup`, {}, auth);
  const secret = String(setup.body.secret);
  const code = await generate({ secret, epoch: Math.floor(Date.now() / 1000 / PERIOD_SECONDS) * PERIOD_SECONDS });
  const verified = await postJson(`${api.url}/auth/mfa/verify`, { code }, auth);
  expect(verified.status, JSON.stringify(verified.body)).to.equal(200);
  return { ...user, recoveryCodes: verified.body.recoveryCodes as string[] };
}

describe('keys: rotating BOTSERVER_JWT_SECRET as documented', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let redisUrl: string;
  let beforeRotation: Config;
  let afterRotation: Config;
  /** The new secret without the old one listed: what the README warns against. */
  let forgetful: Config;
  let enrolled: Enrolled;
  let oldRefreshToken: string;
  let api: TestApi | undefined;
  let workers: RunningWorkers | undefined;
  const oldSecret = randomHexKey();
  const newSecret = randomHexKey();

  const cliEnv = (config: Config): EnvOverrides => ({ ...sharedSettingsEnv(config), BOTSERVER_PREVIOUS_KEYS: config.secrets.previousKeys });

  async function start(config: Config): Promise<TestApi> {
    api = await startTestApi(config, 'bull');
    workers = await startTestAuditWorker(config, 'bull');
    return api;
  }

  async function stop(): Promise<void> {
    await api?.stop();
    await workers?.shutdown();
    api = undefined;
    workers = undefined;
  }

  async function auditDrained(current: TestApi): Promise<void> {
    await waitFor(async () => Object.values(await current.kernel.queues.queue('audit').getJobCounts('waiting', 'active', 'delayed')).every((n) => n === 0), 20_000);
  }

  before(async () => {
    database = await createTestDatabase();
    const url = new URL(REDIS_SERVER.toString());
    url.pathname = `/${await emptyRedisDb()}`;
    redisUrl = url.toString();
    const shared = {
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      BOTSERVER_PORT: '0',
      BOTSERVER_DATA_DIR: freshDataDir(),
      BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
      DATABASE_ENCRYPTION_KEY: randomHexKey(),
    };
    beforeRotation = testConfig({ ...shared, BOTSERVER_JWT_SECRET: oldSecret });
    afterRotation = testConfig({ ...shared, BOTSERVER_JWT_SECRET: newSecret, BOTSERVER_PREVIOUS_KEYS: `jwt-2030-01:${oldSecret}` });
    forgetful = testConfig({ ...shared, BOTSERVER_JWT_SECRET: newSecret });

    // Before the rotation: an account with MFA, a refresh token, a few audit events.
    const first = await start(beforeRotation);
    enrolled = await enrol(first, await createTestUser(beforeRotation, { role: 'admin' }));
    const login = await postJson(`${first.url}/auth/login`, { email: enrolled.email, password: enrolled.password, totp: enrolled.recoveryCodes[0] });
    expect(login.status, JSON.stringify(login.body)).to.equal(200);
    oldRefreshToken = String(login.body.refreshToken);
    await auditDrained(first);
    await stop();
  });

  after(async () => {
    await stop();
    const redis = new Redis(redisUrl);
    await redis.flushdb();
    redis.disconnect();
    await database?.destroy();
    await cleanupProcesses();
  });

  it('`keys rotate --check` with the documented configuration: exit 0, old rows under the previous key, refresh tokens end', async () => {
    const result = await runCli(['keys', 'rotate', '--check'], cliEnv(afterRotation), 60_000);
    expect(result.code, result.stderr + result.stdout).to.equal(0);
    const oldAuditKid = deriveKey(Buffer.from(oldSecret, 'hex'), 'auditChain').kid;
    const oldRecoveryKid = deriveKey(Buffer.from(oldSecret, 'hex'), 'recovery').kid;
    expect(result.stdout).to.match(new RegExp(`PREVIOUS +\\d+ audit rows \\[${oldAuditKid}\\]`));
    expect(result.stdout).to.match(new RegExp(`PREVIOUS +9 recovery codes \\[${oldRecoveryKid}\\]`));
    expect(result.stdout).to.match(/ENDS +\d+ refresh tokens/);
    expect(result.stdout).to.include('result: nothing stored would be lost');
    for (const secret of [oldSecret, newSecret]) expect(result.stdout + result.stderr).to.not.include(secret);
  });

  it('`keys rotate --check` without the old secret listed: exit 1, naming what would be lost', async () => {
    const result = await runCli(['keys', 'rotate', '--check'], cliEnv(forgetful), 60_000);
    expect(result.code, result.stderr + result.stdout).to.equal(1);
    expect(result.stdout).to.match(/MISSING +\d+ audit rows/);
    expect(result.stdout).to.match(/MISSING +9 recovery codes/);
    expect(result.stdout).to.include('would invalidate stored data');
  });

  it('`keys rotate` without --check is bad usage (exit 2)', async () => {
    const result = await runCli(['keys', 'rotate'], cliEnv(afterRotation));
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('--check');
  });

  describe('after the rotation', () => {
    let current: TestApi;
    before(async () => {
      current = await start(afterRotation);
    });

    it('refresh tokens issued before are refused (401 invalid_token)', async () => {
      const reply = await postJson(`${current.url}/auth/refresh`, { refreshToken: oldRefreshToken });
      expect(reply.status).to.equal(401);
      expect(reply.body.error).to.equal('invalid_token');
    });

    it('recovery codes made before still work, once each', async () => {
      const code = enrolled.recoveryCodes[1] ?? '';
      const login = await postJson(`${current.url}/auth/login`, { email: enrolled.email, password: enrolled.password, totp: code });
      expect(login.status, JSON.stringify(login.body)).to.equal(200);
      const again = await postJson(`${current.url}/auth/login`, { email: enrolled.email, password: enrolled.password, totp: code });
      expect(again.status).to.equal(401);
      // The new login's refresh token works under the new key.
      expect((await postJson(`${current.url}/auth/refresh`, { refreshToken: String(login.body.refreshToken) })).status).to.equal(200);
    });

    it('a recovery code stored before key ids (a bare HMAC under the secret of then) still works, once', async () => {
      const legacyCode = 'abcd-ef01-2345-6789';
      const legacy = hmacHex(Buffer.from(oldSecret, 'hex'), `recovery\0${enrolled.id}\0${legacyCode}`);
      await database.ownerDb('users').where({ id: enrolled.id }).update({ mfa_recovery_codes: database.ownerDb.raw('mfa_recovery_codes || ?::jsonb', [JSON.stringify([legacy])]) });
      const login = await postJson(`${current.url}/auth/login`, { email: enrolled.email, password: enrolled.password, totp: legacyCode.toUpperCase() });
      expect(login.status, JSON.stringify(login.body)).to.equal(200);
      expect((await postJson(`${current.url}/auth/login`, { email: enrolled.email, password: enrolled.password, totp: legacyCode })).status).to.equal(401);
    });

    it('audit verify passes over rows of both keys (CLI exit 0, and the verify job)', async () => {
      await auditDrained(current);
      const kids = await database.ownerDb('audit_events').distinct('key_id').pluck<string[]>('key_id');
      expect(kids.sort()).to.deep.equal([deriveKey(Buffer.from(newSecret, 'hex'), 'auditChain').kid, deriveKey(Buffer.from(oldSecret, 'hex'), 'auditChain').kid].sort());
      const cli = await runCli(['audit', 'verify'], cliEnv(afterRotation));
      expect(cli.code, cli.stderr).to.equal(0);
      expect(cli.stdout).to.match(/^audit chain intact: \d+ event\(s\) checked$/m);

      const login = await postJson(`${current.url}/auth/login`, { email: enrolled.email, password: enrolled.password, totp: enrolled.recoveryCodes[2] });
      const auth = { authorization: `Bearer ${String(login.body.accessToken)}` };
      const queued = await postJson(`${current.url}/api/audit/verify`, { full: true }, auth);
      expect(queued.status).to.equal(202);
      const done = await waitFor(async () => {
        const response = await fetch(`${current.url}/api/audit/verify`, { headers: auth });
        const body = (await response.json()) as Record<string, unknown>;
        return body.state === 'done' ? body : false;
      }, 20_000);
      expect(done).to.include({ jobId: queued.body.jobId, ok: true });
    });

    it('without the old secret listed, the old rows no longer verify (exit 1): why the README keeps it', async () => {
      const cli = await runCli(['audit', 'verify'], cliEnv(forgetful));
      expect(cli.code).to.equal(1);
      expect(cli.stdout).to.match(/audit chain broken at row \d+/);
    });
  });
});
