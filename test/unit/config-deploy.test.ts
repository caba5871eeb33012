import { expect } from 'chai';
import fc from 'fast-check';
import { loadConfig } from '../../shared/config/index.js';
import { ConfigError } from '../../shared/errors.js';
import { redisOptions } from '../../shared/redis.js';
import { freshDataDir, randomHexKey } from '../helpers/config.js';

/** The variables of a deployment: BullMQ key prefix, Redis Sentinel, the workers' health port. */

const dataDir = freshDataDir();
function env(overrides: Record<string, string>): Record<string, string> {
  return { NODE_ENV: 'test', BOTSERVER_DATA_DIR: dataDir, BOTSERVER_JWT_SECRET: randomHexKey(), BOTSERVER_ENCRYPTION_KEY: randomHexKey(), DATABASE_ENCRYPTION_KEY: randomHexKey(), ...overrides };
}

function refusal(overrides: Record<string, string>): ConfigError {
  try {
    loadConfig(env(overrides));
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  return expect.fail(`accepted ${JSON.stringify(overrides)}`);
}

describe('config: BOTSERVER_QUEUE_PREFIX', () => {
  it('defaults to bull (the prefix BullMQ uses by itself)', () => {
    expect(loadConfig(env({})).queuePrefix).to.equal('bull');
  });

  it('accepts a hash tag for Redis Cluster, alone or with text around it', () => {
    for (const prefix of ['{botserver}', 'bs{prod}', '{a}-queues', 'bull.v2', 'x_y-z']) expect(loadConfig(env({ BOTSERVER_QUEUE_PREFIX: prefix })).queuePrefix).to.equal(prefix);
  });

  it('refuses empty, too long, two hash tags, an empty or unclosed tag, separators and spaces, naming the variable', () => {
    for (const prefix of ['', 'a'.repeat(65), '{a}{b}', '{}', '{a', 'a}', 'a:b', 'a b', 'bull*', 'é']) {
      const error = refusal({ BOTSERVER_QUEUE_PREFIX: prefix });
      expect(error.message, JSON.stringify(prefix)).to.match(/^BOTSERVER_QUEUE_PREFIX: /);
    }
  });

  it('property: a prefix is accepted exactly when it is 1-64 safe characters with at most one non-empty {tag}', () => {
    const safe = /^[\w.-]*$/;
    const reference = (value: string): boolean => {
      if (value.length < 1 || value.length > 64) return false;
      const open = value.indexOf('{');
      if (open === -1) return safe.test(value);
      const close = value.indexOf('}', open);
      if (close === -1 || close === open + 1) return false;
      const [before, tag, after] = [value.slice(0, open), value.slice(open + 1, close), value.slice(close + 1)];
      return safe.test(before) && safe.test(tag) && safe.test(after);
    };
    const alphabet = fc.constantFrom('a', 'Z', '0', '_', '.', '-', '{', '}', ':', ' ', '*', 'é');
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: alphabet, maxLength: 70 }), fc.string({ maxLength: 70 })), (prefix) => {
        let accepted: boolean;
        try {
          accepted = loadConfig(env({ BOTSERVER_QUEUE_PREFIX: prefix })).queuePrefix === prefix;
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          accepted = false;
        }
        expect(accepted, JSON.stringify(prefix)).to.equal(reference(prefix));
      }),
      { numRuns: 300 },
    );
  });
});

describe('config: Redis Sentinel', () => {
  it('unset: no sentinel, ioredis gets no sentinel options', () => {
    const config = loadConfig(env({}));
    expect(config.redisSentinel).to.equal(undefined);
    expect(redisOptions(config)).to.deep.equal({});
  });

  it('REDIS_SENTINELS and REDIS_SENTINEL_NAME give ioredis the sentinels, the master group and failover detection', () => {
    const config = loadConfig(env({ REDIS_SENTINELS: 'sentinel-a:26379, 10.0.0.2:26380,[::1]:26381', REDIS_SENTINEL_NAME: 'mymaster', REDIS_SENTINEL_PASSWORD: 'sentinel-pass' }));
    expect(config.redisSentinel).to.deep.equal({ sentinels: [{ host: 'sentinel-a', port: 26379 }, { host: '10.0.0.2', port: 26380 }, { host: '::1', port: 26381 }], name: 'mymaster', password: 'sentinel-pass' });
    expect(redisOptions(config)).to.deep.equal({
      sentinels: [{ host: 'sentinel-a', port: 26379 }, { host: '10.0.0.2', port: 26380 }, { host: '::1', port: 26381 }],
      name: 'mymaster',
      role: 'master',
      sentinelPassword: 'sentinel-pass',
      failoverDetector: true,
    });
  });

  it('with a rediss: REDIS_URL the sentinels are reached over TLS too', () => {
    const config = loadConfig(env({ REDIS_URL: 'rediss://:pw@ignored:6380/2', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_NAME: 'm' }));
    expect(redisOptions(config)).to.include({ enableTLSForSentinelMode: true, name: 'm' });
  });

  it('one without the other is refused, naming the missing variable', () => {
    expect(refusal({ REDIS_SENTINELS: 's:26379' }).message).to.match(/^REDIS_SENTINEL_NAME: /);
    expect(refusal({ REDIS_SENTINEL_NAME: 'mymaster' }).message).to.match(/^REDIS_SENTINELS: /);
  });

  it('refuses an address that is not host:port, naming REDIS_SENTINELS', () => {
    for (const list of ['sentinel', 'sentinel:', ':26379', 'sentinel:0', 'sentinel:65536', 'a:1,b', 'http://s:1', 'a b:1', '::1:26379']) {
      expect(refusal({ REDIS_SENTINELS: list, REDIS_SENTINEL_NAME: 'm' }).message, list).to.match(/^REDIS_SENTINELS: /);
    }
  });

  it('property: any list of valid host:port items parses back to the same hosts and ports', () => {
    const host = fc.oneof(fc.domain(), fc.ipV4(), fc.ipV6().map((address) => `[${address}]`));
    const item = fc.record({ host, port: fc.integer({ min: 1, max: 65535 }) });
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 5 }), (items) => {
        const config = loadConfig(env({ REDIS_SENTINELS: items.map(({ host: name, port }) => `${name}:${port}`).join(','), REDIS_SENTINEL_NAME: 'm' }));
        expect(config.redisSentinel?.sentinels).to.deep.equal(items.map(({ host: name, port }) => ({ host: name.replace(/^\[|\]$/g, ''), port })));
      }),
      { numRuns: 200 },
    );
  });
});

describe('config: BOTSERVER_HEALTH_PORT', () => {
  it('unset or empty: no health listener', () => {
    expect(loadConfig(env({})).healthPort).to.equal(undefined);
    expect(loadConfig(env({ BOTSERVER_HEALTH_PORT: ' ' })).healthPort).to.equal(undefined);
  });

  it('a port number is kept; anything else is refused naming the variable', () => {
    expect(loadConfig(env({ BOTSERVER_HEALTH_PORT: '9090' })).healthPort).to.equal(9090);
    for (const value of ['0', '65536', 'http', '-1', '90.5', '123456']) expect(refusal({ BOTSERVER_HEALTH_PORT: value }).message, value).to.match(/^BOTSERVER_HEALTH_PORT: /);
  });
});
