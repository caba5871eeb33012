import { generateKeyPairSync, createPrivateKey } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { generateJwtPrivateKeyPem, loadConfig, type Config } from '../../shared/config/index.js';
import { ConfigError } from '../../shared/errors.js';
import { freshDataDir, randomHexKey, testConfig } from '../helpers/config.js';

type Env = Record<string, string>;

/** One RSA key for the whole file: generating one per test would only make the suite slow. */
const RSA_PEM = generateJwtPrivateKeyPem();
const EC_PEM = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const filesDir = freshDataDir();
const RSA_PEM_PATH = join(filesDir, 'jwt-rsa.pem');
const EC_PEM_PATH = join(filesDir, 'jwt-ec.pem');
const TLS_CERT_PATH = join(filesDir, 'tls-cert.pem');
const TLS_KEY_PATH = join(filesDir, 'tls-key.pem');
writeFileSync(RSA_PEM_PATH, RSA_PEM, { mode: 0o600 });
writeFileSync(EC_PEM_PATH, EC_PEM, { mode: 0o600 });
writeFileSync(TLS_CERT_PATH, '-----BEGIN CERTIFICATE-----\nplaceholder\n-----END CERTIFICATE-----\n');
writeFileSync(TLS_KEY_PATH, RSA_PEM, { mode: 0o600 });

/** A complete, valid environment (explicit keys, so no dev key is generated) plus `overrides`. */
function validEnv(overrides: Env = {}): Env {
  return {
    NODE_ENV: 'test',
    BOTSERVER_DATA_DIR: filesDir,
    BOTSERVER_JWT_SECRET: randomHexKey(),
    BOTSERVER_ENCRYPTION_KEY: randomHexKey(),
    DATABASE_ENCRYPTION_KEY: randomHexKey(),
    BOTSERVER_JWT_PRIVATE_KEY: RSA_PEM,
    ...overrides,
  };
}

/** The environment production accepts: the four keys and a TLS-terminating proxy. */
function productionEnv(overrides: Env = {}): Env {
  return validEnv({ NODE_ENV: 'production', BOTSERVER_TRUST_PROXY: 'loopback', ...overrides });
}

function without(env: Env, name: string): Env {
  const copy = { ...env };
  delete copy[name];
  return copy;
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : `non-error ${typeof error}`;
}

function configErrorOf(env: Env): ConfigError {
  let thrown: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    thrown = error;
  }
  if (thrown === undefined) return expect.fail(`expected a ConfigError, but loadConfig accepted ${JSON.stringify(Object.keys(env))}`);
  if (!(thrown instanceof ConfigError)) return expect.fail(`expected a ConfigError, got ${describeError(thrown)}`);
  return thrown;
}

describe('config: defaults (CONTRACT §2)', () => {
  let dev: Config;
  before(() => {
    // Nothing set but the data directory: every default, and dev keys generated under the directory.
    dev = loadConfig({ BOTSERVER_DATA_DIR: freshDataDir() });
  });

  it('development is the default mode', () => {
    expect(dev.env).to.equal('development');
    expect(dev.production).to.equal(false);
  });

  it('listens on 127.0.0.1:8080', () => {
    expect(dev.host).to.equal('127.0.0.1');
    expect(dev.port).to.equal(8080);
  });

  it('connects to the local PostgreSQL and Redis', () => {
    expect(dev.databaseUrl).to.equal('postgres://postgres@127.0.0.1:5432/botserver');
    expect(dev.redisUrl).to.equal('redis://127.0.0.1:6379');
  });

  it('allows only the local origins', () => {
    expect(dev.allowedOrigins).to.deep.equal(['http://127.0.0.1:8080', 'http://localhost:8080']);
  });

  it('has the contract rate limits, sizes and timeouts', () => {
    expect({
      rateLimitPerIp: dev.rateLimitPerIp,
      rateLimitPerUser: dev.rateLimitPerUser,
      maxUploadSize: dev.maxUploadSize,
      wsMaxMessageSize: dev.wsMaxMessageSize,
      wsEventsPer10s: dev.wsEventsPer10s,
      sessionTimeoutSeconds: dev.sessionTimeoutSeconds,
      maxLoginAttempts: dev.maxLoginAttempts,
      lockoutDurationSeconds: dev.lockoutDurationSeconds,
    }).to.deep.equal({
      rateLimitPerIp: 100,
      rateLimitPerUser: 1000,
      maxUploadSize: 104857600,
      wsMaxMessageSize: 10485760,
      wsEventsPer10s: 30,
      sessionTimeoutSeconds: 3600,
      maxLoginAttempts: 5,
      lockoutDurationSeconds: 900,
    });
  });

  it('audit on, MFA not required, no features, every optional peer off', () => {
    expect(dev.auditEnabled).to.equal(true);
    expect(dev.requireMfa).to.equal(false);
    expect([...dev.features]).to.deep.equal([]);
    expect(dev.tls).to.equal(undefined);
    expect(dev.oidc).to.equal(undefined);
    expect(dev.llm).to.equal(undefined);
    expect(dev.embeddings).to.equal(undefined);
    expect(dev.qdrant).to.equal(undefined);
    expect(dev.s3).to.equal(undefined);
    expect(dev.metricsToken).to.equal(undefined);
    expect(dev.trustProxy).to.equal(undefined);
    expect(dev.logDir).to.equal(undefined);
    expect(dev.secrets.previousKeys).to.equal('');
  });

  it('TLS, once enabled, defaults to minimum version 1.3', () => {
    const config = loadConfig(validEnv({ BOTSERVER_TLS_CERT: TLS_CERT_PATH, BOTSERVER_TLS_KEY: TLS_KEY_PATH }));
    expect(config.tls).to.deep.equal({ certPath: TLS_CERT_PATH, keyPath: TLS_KEY_PATH, minVersion: 'TLSv1.3' });
    const older = loadConfig(validEnv({ BOTSERVER_TLS_CERT: TLS_CERT_PATH, BOTSERVER_TLS_KEY: TLS_KEY_PATH, BOTSERVER_TLS_MIN_VERSION: '1.2' }));
    expect(older.tls?.minVersion).to.equal('TLSv1.2');
  });

  it('logs at debug in development and at info in production; LOG_LEVEL wins', () => {
    expect(dev.logLevel).to.equal('debug');
    expect(loadConfig(productionEnv()).logLevel).to.equal('info');
    expect(loadConfig(productionEnv({ LOG_LEVEL: 'warn' })).logLevel).to.equal('warn');
  });

  it('parses set values, not only defaults', () => {
    const config = loadConfig(
      validEnv({
        BOTSERVER_PORT: '9090',
        BOTSERVER_HOST: '0.0.0.0',
        BOTSERVER_ALLOWED_ORIGINS: 'https://chat.example.com, https://admin.example.com:8443',
        BOTSERVER_ENABLE_AUDIT: 'false',
        BOTSERVER_REQUIRE_MFA: 'true',
        BOTSERVER_FEATURES: 'email',
        BOTSERVER_RATE_LIMIT_PER_IP: '7',
      }),
    );
    expect(config.port).to.equal(9090);
    expect(config.host).to.equal('0.0.0.0');
    expect(config.allowedOrigins).to.deep.equal(['https://chat.example.com', 'https://admin.example.com:8443']);
    expect(config.auditEnabled).to.equal(false);
    expect(config.requireMfa).to.equal(true);
    expect([...config.features]).to.deep.equal(['email']);
    expect(config.rateLimitPerIp).to.equal(7);
    expect(config.warnings.some((warning) => warning.includes('BOTSERVER_ENABLE_AUDIT'))).to.equal(true);
  });
});

describe('config: development keys', () => {
  it('are generated once, 64 hex each, all different, kept 0600 in a 0700 directory and reused', () => {
    const dataDir = join(freshDataDir(), 'nested');
    const first = loadConfig({ NODE_ENV: 'development', BOTSERVER_DATA_DIR: dataDir });
    const second = loadConfig({ NODE_ENV: 'development', BOTSERVER_DATA_DIR: dataDir });
    const { jwtSecret, encryptionKey, databaseEncryptionKey } = first.secrets;
    for (const key of [jwtSecret, encryptionKey, databaseEncryptionKey]) expect(key).to.match(/^[0-9a-f]{64}$/);
    expect(new Set([jwtSecret, encryptionKey, databaseEncryptionKey]).size).to.equal(3);
    expect(second.secrets).to.deep.equal(first.secrets);
    expect(createPrivateKey(first.secrets.jwtPrivateKeyPem).asymmetricKeyType).to.equal('rsa');
    expect(statSync(dataDir).mode & 0o777).to.equal(0o700);
    for (const file of ['secrets.json', 'jwt-private.pem']) expect(statSync(join(dataDir, file)).mode & 0o777).to.equal(0o600);
  });

  it('testConfig gives fresh keys and a fresh data directory, and ignores the rest of the real environment', () => {
    const saved = process.env.BOTSERVER_PORT;
    process.env.BOTSERVER_PORT = '1234';
    let a: Config;
    try {
      a = testConfig();
    } finally {
      if (saved === undefined) delete process.env.BOTSERVER_PORT;
      else process.env.BOTSERVER_PORT = saved;
    }
    expect(a.port).to.equal(8080);
    const b = testConfig({ BOTSERVER_PORT: '0' });
    expect(a.secrets.encryptionKey).to.not.equal(b.secrets.encryptionKey);
    expect(a.dataDir).to.not.equal(b.dataDir);
    expect(a.env).to.equal('test');
    expect(a.logLevel).to.equal('warn');
    expect(b.port).to.equal(0);
  });
});

describe('config: bad values name the variable', () => {
  const cases: Array<{ set: Env; variable: string; why: string }> = [
    { set: { NODE_ENV: 'staging' }, variable: 'NODE_ENV', why: 'unknown mode' },
    { set: { BOTSERVER_PORT: 'http' }, variable: 'BOTSERVER_PORT', why: 'not a number' },
    { set: { BOTSERVER_PORT: '65536' }, variable: 'BOTSERVER_PORT', why: 'above 65535' },
    { set: { BOTSERVER_PORT: '-1' }, variable: 'BOTSERVER_PORT', why: 'negative' },
    { set: { BOTSERVER_JWT_SECRET: 'a'.repeat(63) }, variable: 'BOTSERVER_JWT_SECRET', why: '63 hex characters' },
    { set: { BOTSERVER_ENCRYPTION_KEY: `${'b'.repeat(63)}g` }, variable: 'BOTSERVER_ENCRYPTION_KEY', why: 'a non-hex character' },
    { set: { DATABASE_ENCRYPTION_KEY: 'c'.repeat(65) }, variable: 'DATABASE_ENCRYPTION_KEY', why: '65 hex characters' },
    { set: { BOTSERVER_PREVIOUS_KEYS: `old${'d'.repeat(64)}` }, variable: 'BOTSERVER_PREVIOUS_KEYS', why: 'no kid separator' },
    { set: { DATABASE_URL: 'mysql://root@127.0.0.1/botserver' }, variable: 'DATABASE_URL', why: 'not PostgreSQL' },
    { set: { REDIS_URL: 'http://127.0.0.1:6379' }, variable: 'REDIS_URL', why: 'not Redis' },
    { set: { BOTSERVER_FEATURES: 'email,telepathy' }, variable: 'BOTSERVER_FEATURES', why: 'unknown feature' },
    { set: { BOTSERVER_FEATURES: 'vectordb' }, variable: 'QDRANT_URL', why: 'vectordb without Qdrant' },
    { set: { BOTSERVER_ENABLE_AUDIT: 'maybe' }, variable: 'BOTSERVER_ENABLE_AUDIT', why: 'not a boolean' },
    { set: { BOTSERVER_REQUIRE_MFA: 'on' }, variable: 'BOTSERVER_REQUIRE_MFA', why: 'not a boolean' },
    { set: { BOTSERVER_SESSION_TIMEOUT: '0' }, variable: 'BOTSERVER_SESSION_TIMEOUT', why: 'zero' },
    { set: { BOTSERVER_MAX_LOGIN_ATTEMPTS: '2.5' }, variable: 'BOTSERVER_MAX_LOGIN_ATTEMPTS', why: 'a fraction' },
    { set: { BOTSERVER_LOCKOUT_DURATION: '-900' }, variable: 'BOTSERVER_LOCKOUT_DURATION', why: 'negative' },
    { set: { BOTSERVER_ALLOWED_ORIGINS: 'https://chat.example.com/app' }, variable: 'BOTSERVER_ALLOWED_ORIGINS', why: 'a path is not an origin' },
    { set: { BOTSERVER_RATE_LIMIT_PER_IP: '0' }, variable: 'BOTSERVER_RATE_LIMIT_PER_IP', why: 'zero' },
    { set: { BOTSERVER_RATE_LIMIT_PER_USER: 'lots' }, variable: 'BOTSERVER_RATE_LIMIT_PER_USER', why: 'not a number' },
    { set: { BOTSERVER_MAX_UPLOAD_SIZE: '1e9' }, variable: 'BOTSERVER_MAX_UPLOAD_SIZE', why: 'exponent notation' },
    { set: { BOTSERVER_WS_MAX_MESSAGE_SIZE: '9'.repeat(20) }, variable: 'BOTSERVER_WS_MAX_MESSAGE_SIZE', why: 'beyond a safe integer' },
    { set: { BOTSERVER_WS_RATE_LIMIT: '0' }, variable: 'BOTSERVER_WS_RATE_LIMIT', why: 'zero' },
    { set: { BOTSERVER_TLS_MIN_VERSION: '1.1' }, variable: 'BOTSERVER_TLS_MIN_VERSION', why: 'TLS 1.1' },
    { set: { BOTSERVER_TLS_CERT: TLS_CERT_PATH }, variable: 'BOTSERVER_TLS_KEY', why: 'a certificate without its key' },
    { set: { BOTSERVER_TLS_KEY: TLS_KEY_PATH }, variable: 'BOTSERVER_TLS_CERT', why: 'a key without its certificate' },
    { set: { BOTSERVER_TLS_CERT: join(filesDir, 'missing.pem'), BOTSERVER_TLS_KEY: TLS_KEY_PATH }, variable: 'BOTSERVER_TLS_CERT', why: 'a missing file' },
    { set: { ZITADEL_DOMAIN: 'not a url' }, variable: 'ZITADEL_DOMAIN', why: 'not a URL' },
    { set: { ZITADEL_DOMAIN: 'https://id.example.com' }, variable: 'ZITADEL_CLIENT_ID', why: 'issuer without client id' },
    { set: { LLM_BASE_URL: 'ftp://llm.example.com' }, variable: 'LLM_BASE_URL', why: 'not http(s)' },
    { set: { S3_REGION: 'eu-west-1' }, variable: 'S3_BUCKET', why: 'a region without a bucket' },
    { set: { BOTSERVER_METRICS_TOKEN: 'short' }, variable: 'BOTSERVER_METRICS_TOKEN', why: 'under 16 characters' },
    { set: { BOTSERVER_TRUST_PROXY: 'everyone; rm -rf /' }, variable: 'BOTSERVER_TRUST_PROXY', why: 'not hops or CIDRs' },
    { set: { LOG_LEVEL: 'shout' }, variable: 'LOG_LEVEL', why: 'unknown level' },
  ];

  for (const { set, variable, why } of cases) {
    it(`${Object.entries(set).map(([name, value]) => `${name}=${value.slice(0, 30)}`).join(' ')} (${why}) → ${variable}`, () => {
      const error = configErrorOf(validEnv(set));
      expect(error.variable).to.equal(variable);
      expect(error.message.startsWith(`${variable}: `)).to.equal(true);
      expect(error.code).to.equal('invalid_config');
      expect(error.expose).to.equal(false);
    });
  }

  for (const origins of ['*', 'https://chat.example.com,*', ' * ', 'https://*.example.com']) {
    it(`refuses the wildcard origin list "${origins}"`, () => {
      expect(configErrorOf(validEnv({ BOTSERVER_ALLOWED_ORIGINS: origins })).variable).to.equal('BOTSERVER_ALLOWED_ORIGINS');
    });
  }
});

describe('config: production', () => {
  it('starts with the four keys and a TLS-terminating proxy, or with TLS', () => {
    expect(loadConfig(productionEnv()).production).to.equal(true);
    const withTls = loadConfig(
      productionEnv({ BOTSERVER_TRUST_PROXY: '', BOTSERVER_TLS_CERT: TLS_CERT_PATH, BOTSERVER_TLS_KEY: TLS_KEY_PATH }),
    );
    expect(withTls.tls?.minVersion).to.equal('TLSv1.3');
  });

  for (const name of ['BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY', 'BOTSERVER_JWT_PRIVATE_KEY']) {
    it(`refuses to start without ${name} (and generates nothing)`, () => {
      const dataDir = join(freshDataDir(), 'never-created');
      const error = configErrorOf(without(productionEnv({ BOTSERVER_DATA_DIR: dataDir }), name));
      expect(error.variable).to.equal(name);
      expect(() => statSync(dataDir)).to.throw();
    });
  }

  it('refuses plain HTTP without a proxy, naming BOTSERVER_TLS_CERT', () => {
    expect(configErrorOf(without(productionEnv(), 'BOTSERVER_TRUST_PROXY')).variable).to.equal('BOTSERVER_TLS_CERT');
  });

  it('warns about plain-HTTP origins, and only about those', () => {
    const plain = loadConfig(productionEnv({ BOTSERVER_ALLOWED_ORIGINS: 'https://chat.example.com,http://legacy.example.com' }));
    expect(plain.warnings.filter((warning) => warning.includes('BOTSERVER_ALLOWED_ORIGINS'))).to.have.length(1);
    expect(loadConfig(productionEnv()).warnings.some((warning) => warning.includes('plain-HTTP'))).to.equal(true);
    const secure = loadConfig(productionEnv({ BOTSERVER_ALLOWED_ORIGINS: 'https://chat.example.com' }));
    expect(secure.warnings.some((warning) => warning.includes('BOTSERVER_ALLOWED_ORIGINS'))).to.equal(false);
  });

  it('does not warn about plain-HTTP origins outside production', () => {
    expect(loadConfig(validEnv()).warnings.some((warning) => warning.includes('BOTSERVER_ALLOWED_ORIGINS'))).to.equal(false);
  });
});

describe('config: BOTSERVER_JWT_PRIVATE_KEY', () => {
  it('accepts an RSA PEM given inline', () => {
    expect(loadConfig(validEnv({ BOTSERVER_JWT_PRIVATE_KEY: RSA_PEM })).secrets.jwtPrivateKeyPem.trim()).to.equal(RSA_PEM.trim());
  });

  it('accepts an RSA PEM given on one line with \\n escapes', () => {
    const oneLine = RSA_PEM.trim().replace(/\n/g, '\\n');
    const pem = loadConfig(validEnv({ BOTSERVER_JWT_PRIVATE_KEY: oneLine })).secrets.jwtPrivateKeyPem;
    expect(createPrivateKey(pem).asymmetricKeyType).to.equal('rsa');
  });

  it('accepts the path of an RSA PEM file and reads it', () => {
    expect(loadConfig(validEnv({ BOTSERVER_JWT_PRIVATE_KEY: RSA_PEM_PATH })).secrets.jwtPrivateKeyPem).to.equal(readFileSync(RSA_PEM_PATH, 'utf8'));
  });

  const refused: Array<[string, string]> = [
    ['garbage PEM', '-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----'],
    ['a missing path', join(filesDir, 'no-such-key.pem')],
    ['a directory', filesDir],
    ['a file that is not a PEM', TLS_CERT_PATH],
    ['an EC key inline', EC_PEM],
    ['an EC key by path', EC_PEM_PATH],
  ];
  for (const [what, value] of refused) {
    it(`refuses ${what} with a ConfigError naming it`, () => {
      expect(configErrorOf(validEnv({ BOTSERVER_JWT_PRIVATE_KEY: value })).variable).to.equal('BOTSERVER_JWT_PRIVATE_KEY');
    });
  }
});

describe('config: the three keys', () => {
  it('must differ from each other', () => {
    const shared = randomHexKey();
    for (const [a, b] of [
      ['BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY'],
      ['BOTSERVER_JWT_SECRET', 'DATABASE_ENCRYPTION_KEY'],
      ['BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY'],
    ] as const) {
      const error = configErrorOf(validEnv({ [a]: shared, [b]: shared }));
      expect(error.variable).to.be.oneOf(['BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY']);
      expect(error.message).to.not.include(shared);
    }
  });

  it('must differ even when only their letter case differs', () => {
    const key = `abcdef${randomHexKey().slice(6)}`;
    expect(() => loadConfig(validEnv({ BOTSERVER_JWT_SECRET: key, BOTSERVER_ENCRYPTION_KEY: key.toUpperCase() }))).to.throw(ConfigError);
  });

  it('are accepted in upper case and normalised to lower case', () => {
    const key = `ABCDEF${randomHexKey().slice(6).toUpperCase()}`;
    expect(loadConfig(validEnv({ BOTSERVER_ENCRYPTION_KEY: key })).secrets.encryptionKey).to.equal(key.toLowerCase());
  });
});

describe('config: properties', () => {
  const anyString = fc.oneof(
    fc.string(),
    fc.string({ unit: 'binary' }),
    fc.integer().map(String),
    fc.stringMatching(/^\d{1,22}$/),
    fc.constantFrom('', ' ', '0', '080', '65535', '65536', '1.2', '1.3', ' 1.3', '1.30', '+1', '0x50', '1e3', '٣'),
  );
  /** Each variable, and what a value it accepts must have become. */
  const accepted: Record<string, (config: Config, value: string) => void> = {
    BOTSERVER_PORT: (config, value) => {
      expect(value).to.match(/^\d+$/);
      expect(config.port).to.equal(Number(value));
      expect(Number.isInteger(config.port) && config.port >= 0 && config.port <= 65535).to.equal(true);
    },
    BOTSERVER_RATE_LIMIT_PER_IP: (config, value) => {
      expect(value).to.match(/^\d+$/);
      expect(config.rateLimitPerIp).to.equal(Number(value));
      expect(Number.isSafeInteger(config.rateLimitPerIp) && config.rateLimitPerIp > 0).to.equal(true);
    },
    BOTSERVER_TLS_MIN_VERSION: (config, value) => {
      expect(value).to.be.oneOf(['1.2', '1.3']);
      expect(config.tls?.minVersion).to.equal(value === '1.2' ? 'TLSv1.2' : 'TLSv1.3');
    },
  };
  const tlsFiles = { BOTSERVER_TLS_CERT: TLS_CERT_PATH, BOTSERVER_TLS_KEY: TLS_KEY_PATH };

  for (const [variable, check] of Object.entries(accepted)) {
    it(`any string as ${variable} gives a valid config or a ConfigError naming exactly ${variable}`, () => {
      const base = validEnv(tlsFiles);
      fc.assert(
        fc.property(anyString, (value) => {
          let config: Config;
          try {
            config = loadConfig({ ...base, [variable]: value });
          } catch (error) {
            if (!(error instanceof ConfigError)) throw new Error(`${variable}=${JSON.stringify(value)} threw ${describeError(error)}`, { cause: error });
            expect(error.variable).to.equal(variable);
            return;
          }
          check(config, value);
        }),
        { numRuns: 300 },
      );
    });
  }

  const keyVariables = ['BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY', 'BOTSERVER_PREVIOUS_KEYS', 'BOTSERVER_JWT_PRIVATE_KEY'];
  const hexChar = fc.constantFrom(...'0123456789abcdefABCDEF');
  const almostKey = fc.oneof(
    fc.string({ unit: hexChar, minLength: 60, maxLength: 70 }),
    fc
      .tuple(fc.string({ unit: hexChar, minLength: 64, maxLength: 64 }), fc.nat({ max: 63 }), fc.constantFrom('g', 'z', ' ', '-', '\n', 'é'))
      .map(([hex, at, bad]) => `${hex.slice(0, at)}${bad}${hex.slice(at + 1)}`),
  );
  const keyishValue = fc.oneof(
    fc.string({ minLength: 12 }),
    fc.string({ unit: 'binary', minLength: 12 }),
    almostKey,
    almostKey.map((hex) => `old:${hex}`),
    almostKey.map((hex) => `-----BEGIN PRIVATE KEY-----\n${hex}\n-----END PRIVATE KEY-----`),
  );

  it('a ConfigError about a key variable never contains the offending value', () => {
    const base = validEnv();
    fc.assert(
      fc.property(fc.constantFrom(...keyVariables), keyishValue, (variable, value) => {
        let thrown: unknown;
        try {
          loadConfig({ ...base, [variable]: value });
        } catch (error) {
          thrown = error;
        }
        if (thrown === undefined) return;
        if (!(thrown instanceof ConfigError)) throw new Error(`${variable} threw ${describeError(thrown)}`);
        expect(thrown.variable).to.equal(variable);
        expect(thrown.message).to.not.include(value);
        expect(thrown.message).to.not.include(value.trim());
      }),
      { numRuns: 500 },
    );
  });
});
