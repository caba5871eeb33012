import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { verifyPassword } from '../../shared/accounts/index.js';
import { generateHexKey, generateJwtPrivateKeyPem } from '../../shared/config/index.js';
import { withDatabaseName } from '../../shared/db/index.js';
import { migrations } from '../../shared/db/migrations/index.js';
import { dropDatabase, useTestDatabase } from '../helpers/db.js';
import { cleanupProcesses, makeTempDir, runCli, type CliResult, type EnvOverrides } from '../helpers/process.js';

/** Where a command would go if its configuration were wrongly accepted: nothing listens on port 1. */
const UNREACHABLE_DB = 'postgres://postgres@127.0.0.1:1/botserver_unreachable';
const SERVER_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/botserver';
const HEX64 = /^[0-9a-f]{64}$/;
const KEY_NAMES = ['BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY'];
const ARGON2ID_OWASP = '$argon2id$v=19$m=19456,t=2,p=1$';

/** Exit code 2 and exactly one line on stderr that matches `line` (and nothing on stdout). */
function expectRefusal(result: CliResult, line: RegExp): void {
  const context = `stdout: ${result.stdout}\nstderr: ${result.stderr}`;
  expect(result.code, context).to.equal(2);
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, context).to.have.length(1);
  expect(lines[0], context).to.match(line);
  expect(result.stdout, context).to.equal('');
}

/** The ConfigError line: `botserver: <VARIABLE>: <reason>`. */
function namingVariable(variable: string): RegExp {
  return new RegExp(`^botserver: ${variable}: \\S`);
}

function uniqueDatabaseUrl(): string {
  return withDatabaseName(SERVER_URL, `botserver_test_${randomBytes(6).toString('hex')}`);
}

async function databaseExists(url: string): Promise<boolean> {
  const name = new URL(url).pathname.slice(1);
  const client = new pg.Client({ connectionString: withDatabaseName(url, 'postgres') });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    return found.rowCount === 1;
  } finally {
    await client.end();
  }
}

/** Names recorded in the database's migration table, in the order they were applied. */
async function appliedMigrations(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ name: string }>('SELECT name FROM knex_migrations ORDER BY id');
    return result.rows.map((row) => row.name);
  } finally {
    await client.end();
  }
}

/** Runs `task` over `items`, `width` at a time (each CLI run is a cold Node + tsx start). */
async function inBatches<T>(items: readonly T[], width: number, task: (item: T) => Promise<void>): Promise<void> {
  for (let start = 0; start < items.length; start += width) {
    await Promise.all(items.slice(start, start + width).map(task));
  }
}

interface Refusal {
  title: string;
  env: EnvOverrides;
  variable: string;
}

const sixtyThreeHex = 'c0ffee'.repeat(11).slice(0, 63);

const REFUSALS: Refusal[] = [
  { title: 'BOTSERVER_PORT=abc', env: { BOTSERVER_PORT: 'abc' }, variable: 'BOTSERVER_PORT' },
  { title: 'BOTSERVER_PORT=70000', env: { BOTSERVER_PORT: '70000' }, variable: 'BOTSERVER_PORT' },
  { title: 'an encryption key of 63 hex characters', env: { BOTSERVER_ENCRYPTION_KEY: sixtyThreeHex }, variable: 'BOTSERVER_ENCRYPTION_KEY' },
  { title: 'BOTSERVER_PREVIOUS_KEYS=bad', env: { BOTSERVER_PREVIOUS_KEYS: 'bad' }, variable: 'BOTSERVER_PREVIOUS_KEYS' },
  { title: 'BOTSERVER_ALLOWED_ORIGINS=*', env: { BOTSERVER_ALLOWED_ORIGINS: '*' }, variable: 'BOTSERVER_ALLOWED_ORIGINS' },
  { title: 'BOTSERVER_ALLOWED_ORIGINS=not-a-url', env: { BOTSERVER_ALLOWED_ORIGINS: 'not-a-url' }, variable: 'BOTSERVER_ALLOWED_ORIGINS' },
  { title: 'DATABASE_URL=mysql://x', env: { DATABASE_URL: 'mysql://x' }, variable: 'DATABASE_URL' },
  { title: 'BOTSERVER_FEATURES=nope', env: { BOTSERVER_FEATURES: 'nope' }, variable: 'BOTSERVER_FEATURES' },
  { title: 'BOTSERVER_FEATURES=vectordb without QDRANT_URL', env: { BOTSERVER_FEATURES: 'vectordb' }, variable: 'QDRANT_URL' },
  { title: 'ZITADEL_DOMAIN without ZITADEL_CLIENT_ID', env: { ZITADEL_DOMAIN: 'https://id.example.com' }, variable: 'ZITADEL_CLIENT_ID' },
  { title: 'BOTSERVER_TLS_CERT without BOTSERVER_TLS_KEY', env: { BOTSERVER_TLS_CERT: '/etc/hostname' }, variable: 'BOTSERVER_TLS_KEY' },
  { title: 'BOTSERVER_SESSION_TIMEOUT=-5', env: { BOTSERVER_SESSION_TIMEOUT: '-5' }, variable: 'BOTSERVER_SESSION_TIMEOUT' },
  { title: 'BOTSERVER_ENABLE_AUDIT=maybe', env: { BOTSERVER_ENABLE_AUDIT: 'maybe' }, variable: 'BOTSERVER_ENABLE_AUDIT' },
];

describe('botserver CLI', function () {
  after(cleanupProcesses);

  describe('bad configuration is refused with exit 2 and one line naming the variable', function () {
    this.timeout(120_000);
    const results = new Map<Refusal, CliResult>();

    before(async function () {
      await inBatches(REFUSALS, 2, async (refusal) => {
        results.set(refusal, await runCli(['migrate'], { DATABASE_URL: UNREACHABLE_DB, ...refusal.env }));
      });
    });

    for (const refusal of REFUSALS) {
      it(`${refusal.title} → ${refusal.variable}`, () => {
        const result = results.get(refusal);
        if (result === undefined) throw new Error('no result recorded');
        expectRefusal(result, namingVariable(refusal.variable));
      });
    }

    it('never prints the rejected key value', () => {
      const keyCase = REFUSALS.find((refusal) => refusal.variable === 'BOTSERVER_ENCRYPTION_KEY');
      const result = keyCase === undefined ? undefined : results.get(keyCase);
      if (result === undefined) throw new Error('no result recorded');
      expect(result.stderr + result.stdout).not.to.include(sixtyThreeHex);
      expect(result.stderr + result.stdout).not.to.include(sixtyThreeHex.slice(0, 16));
    });
  });

  describe('production refuses to start without its keys and TLS', function () {
    this.timeout(60_000);
    let keys: EnvOverrides;
    let jwtKeyPath: string;
    let databaseUrl: string;
    const databaseUrls: string[] = [];

    before(() => {
      keys = Object.fromEntries(KEY_NAMES.map((name) => [name, generateHexKey()]));
      jwtKeyPath = join(makeTempDir(), 'jwt.pem');
      writeFileSync(jwtKeyPath, generateJwtPrivateKeyPem(), { mode: 0o600 });
    });
    beforeEach(() => {
      databaseUrl = uniqueDatabaseUrl();
      databaseUrls.push(databaseUrl);
    });
    after(async function () {
      for (const url of databaseUrls) await dropDatabase(url);
    });

    /** `migrate` in production; asserts that nothing started: no database created, no dev keys written. */
    async function refusedMigrate(env: EnvOverrides, line: RegExp): Promise<void> {
      const dataDir = makeTempDir();
      const result = await runCli(['migrate'], { NODE_ENV: 'production', DATABASE_URL: databaseUrl, BOTSERVER_DATA_DIR: dataDir, ...env });
      expectRefusal(result, line);
      for (const value of Object.values(env)) {
        if (value !== undefined && /^[0-9a-f]{32,}$/i.test(value)) expect(result.stderr, 'a key value was printed').not.to.include(value);
      }
      expect(await databaseExists(databaseUrl), 'database created').to.equal(false);
      expect(readdirSync(dataDir), 'files written to the data dir').to.deep.equal([]);
    }

    it('without any key → BOTSERVER_JWT_SECRET', async () => {
      await refusedMigrate({}, namingVariable('BOTSERVER_JWT_SECRET'));
    });

    it('with the three keys but no BOTSERVER_JWT_PRIVATE_KEY → BOTSERVER_JWT_PRIVATE_KEY', async () => {
      await refusedMigrate({ ...keys, BOTSERVER_TRUST_PROXY: '1' }, namingVariable('BOTSERVER_JWT_PRIVATE_KEY'));
    });

    it('with a key that is not 64 hex characters → that key, without echoing it', async () => {
      const short = 'ab'.repeat(16);
      const env = { ...keys, DATABASE_ENCRYPTION_KEY: short, BOTSERVER_JWT_PRIVATE_KEY: jwtKeyPath, BOTSERVER_TRUST_PROXY: '1' };
      await refusedMigrate(env, namingVariable('DATABASE_ENCRYPTION_KEY'));
    });

    it('with every key but neither TLS nor BOTSERVER_TRUST_PROXY → BOTSERVER_TLS_CERT', async () => {
      await refusedMigrate({ ...keys, BOTSERVER_JWT_PRIVATE_KEY: jwtKeyPath }, namingVariable('BOTSERVER_TLS_CERT'));
    });

    it('starts with every key and BOTSERVER_TRUST_PROXY (the control case)', async () => {
      const dataDir = makeTempDir();
      const env = { ...keys, NODE_ENV: 'production', BOTSERVER_JWT_PRIVATE_KEY: jwtKeyPath, BOTSERVER_TRUST_PROXY: '1' };
      const result = await runCli(['migrate'], { ...env, DATABASE_URL: databaseUrl, BOTSERVER_DATA_DIR: dataDir });
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.match(/^applied: 001_/);
      expect(readdirSync(dataDir), 'production must not write dev keys').to.deep.equal([]);
    });
  });

  describe('dev keys', function () {
    this.timeout(60_000);
    const testDb = useTestDatabase();

    it('are generated under BOTSERVER_DATA_DIR (folder 0700, files 0600) and reused by the next run', async () => {
      const dataDir = join(makeTempDir(), 'state');
      const env = { DATABASE_URL: testDb().url, BOTSERVER_DATA_DIR: dataDir };
      const first = await runCli(['audit', 'verify'], env);
      expect(first.code, first.stderr).to.equal(0);

      expect(statSync(dataDir).mode & 0o777, 'data dir mode').to.equal(0o700);
      const files = readdirSync(dataDir).sort();
      expect(files).to.deep.equal(['jwt-private.pem', 'secrets.json']);
      for (const file of files) expect(statSync(join(dataDir, file)).mode & 0o777, `${file} mode`).to.equal(0o600);
      const snapshot = (): string[] => files.map((file) => readFileSync(join(dataDir, file), 'utf8'));
      const before = snapshot();
      const secrets = JSON.parse(before[1] ?? '') as Record<string, string>;
      const values = [secrets.jwtSecret, secrets.encryptionKey, secrets.databaseEncryptionKey];
      for (const value of values) expect(value).to.match(HEX64);
      expect(new Set(values).size).to.equal(3);
      expect(before[0]).to.match(/^-----BEGIN PRIVATE KEY-----\n/);

      const second = await runCli(['audit', 'verify'], env);
      expect(second.code, second.stderr).to.equal(0);
      expect(readdirSync(dataDir).sort()).to.deep.equal(files);
      expect(snapshot()).to.deep.equal(before);
    });
  });

  describe('keygen', function () {
    this.timeout(30_000);

    it('prints exactly three lines NAME=<64 hex>, all distinct', async () => {
      const result = await runCli(['keygen']);
      expect(result.code, result.stderr).to.equal(0);
      const lines = result.stdout.trimEnd().split('\n');
      expect(lines).to.have.length(3);
      expect(result.stdout.endsWith('\n')).to.equal(true);
      const pairs = lines.map((line) => /^([A-Z_]+)=([0-9a-f]{64})$/.exec(line));
      expect(pairs.map((match) => match?.[1])).to.deep.equal(KEY_NAMES);
      expect(new Set(pairs.map((match) => match?.[2])).size).to.equal(3);
    });
  });

  describe('user create', function () {
    this.timeout(60_000);
    const testDb = useTestDatabase();
    // The blind index of the e-mail depends on the keys: every run must use the same dev keys.
    let dataDir: string;
    const localPart = `ada.lovelace.${randomBytes(3).toString('hex')}`;
    const typed = `${localPart.toUpperCase()}@Example.COM`;
    const normalised = `${localPart}@example.com`;

    before(() => {
      dataDir = makeTempDir();
    });
    const create = (...args: string[]): Promise<CliResult> =>
      runCli(['user', 'create', ...args], { DATABASE_URL: testDb().url, BOTSERVER_DATA_DIR: dataDir });
    const userCount = async (): Promise<number> => Number((await testDb().ownerDb('users').count({ n: '*' }).first())?.n);

    it('--json prints one line {id,email,tenant,role,password} and stores no plaintext e-mail', async () => {
      const result = await create('--email', typed, '--role', 'admin', '--tenant', 'acme', '--json');
      expect(result.code, result.stderr).to.equal(0);
      const lines = result.stdout.trimEnd().split('\n');
      expect(lines).to.have.length(1);
      const printed = JSON.parse(lines[0] ?? '') as Record<string, unknown>;
      expect(Object.keys(printed)).to.deep.equal(['id', 'email', 'tenant', 'role', 'password']);
      expect(printed).to.include({ email: normalised, tenant: 'acme', role: 'admin' });
      expect(printed.id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(printed.password).to.be.a('string').with.length.greaterThan(15);

      const row = await testDb().ownerDb('users').where({ id: printed.id }).first<Record<string, unknown> | undefined>();
      if (row === undefined) throw new Error('no users row for the printed id');
      const rowText = JSON.stringify(row).toLowerCase();
      expect(rowText).not.to.include(normalised);
      expect(rowText).not.to.include(localPart);
      expect(row.must_change_password).to.equal(true);
      expect(row.password_hash).to.be.a('string');
      const hash = String(row.password_hash);
      expect(await verifyPassword(hash, String(printed.password))).to.equal(true);

      const membership = await testDb()
        .ownerDb('memberships')
        .join('tenants', 'tenants.id', 'memberships.tenant_id')
        .where({ 'memberships.user_id': printed.id })
        .select<Array<{ name: string; role: string }>>('tenants.name', 'memberships.role');
      expect(membership).to.deep.equal([{ name: 'acme', role: 'admin' }]);
      // PHC strings list Argon2 parameters in m,t,p order (other verifiers parse them strictly in that order).
      expect(hash.startsWith(ARGON2ID_OWASP), `${hash} should start with ${ARGON2ID_OWASP}`).to.equal(true);
    });

    it('refuses the same e-mail again (in another case) with a clear message', async () => {
      const usersBefore = await userCount();
      const result = await create('--email', normalised.replace('example', 'EXAMPLE'), '--role', 'user', '--tenant', 'acme');
      expect(result.code, result.stdout).to.not.equal(0);
      expect(result.stderr.trimEnd().split('\n')).to.have.length(1);
      expect(result.stderr).to.match(/^botserver: .*e-mail.*exists/i);
      expect(result.stdout).not.to.match(/password/i);
      expect(await userCount()).to.equal(usersBefore);
    });

    it('--role root exits 2 naming --role', async () => {
      const result = await create('--email', `other.${normalised}`, '--role', 'root');
      expectRefusal(result, /--role.*root/);
    });

    it('a bad e-mail exits 2 naming the e-mail', async () => {
      const usersBefore = await userCount();
      const result = await create('--email', 'not-an-address', '--role', 'user');
      expectRefusal(result, /^botserver: email .*e-mail/);
      expect(await userCount()).to.equal(usersBefore);
    });
  });

  describe('usage errors', function () {
    this.timeout(30_000);

    it('an unknown command exits 2 naming it', async () => {
      expectRefusal(await runCli(['frobnicate']), /unknown command 'frobnicate'/);
    });

    it('worker nope exits 2 naming the family argument', async () => {
      expectRefusal(await runCli(['worker', 'nope']), /'nope'.*family/);
    });
  });

  describe('migrate', function () {
    this.timeout(60_000);
    const url = uniqueDatabaseUrl();

    after(async function () {
      await dropDatabase(url);
    });

    it('creates a database that does not exist yet and applies every migration', async () => {
      expect(await databaseExists(url)).to.equal(false);
      const result = await runCli(['migrate'], { DATABASE_URL: url });
      expect(result.code, result.stderr).to.equal(0);
      const names = migrations.map((migration) => migration.name);
      expect(names[0]).to.equal('001_tenants_users');
      expect(result.stdout).to.equal(`applied: ${names.join(', ')}\n`);
      expect(await databaseExists(url)).to.equal(true);
      expect(await appliedMigrations(url)).to.deep.equal(names);
    });

    it('says the database is up to date on a second run', async () => {
      const result = await runCli(['migrate'], { DATABASE_URL: url });
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('database is up to date\n');
    });
  });

  describe('audit verify', function () {
    this.timeout(30_000);
    const testDb = useTestDatabase();

    it('exits 0 on a database without events', async () => {
      const result = await runCli(['audit', 'verify'], { DATABASE_URL: testDb().url });
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stdout).to.equal('audit chain intact: 0 event(s) checked\n');
    });
  });
});
