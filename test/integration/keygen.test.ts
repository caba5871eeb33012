import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig } from '../../shared/config/index.js';
import { UsageError } from '../../shared/errors.js';
import { envFileLines } from '../../scripts/commands/keygen.js';
import { cleanupProcesses, makeTempDir, runCli } from '../helpers/process.js';

/** `botserver keygen --out FILE [--secret NAME...]`: the env file a deployment's secrets come from. */

function readEnvFile(path: string): Map<string, string> {
  const lines = readFileSync(path, 'utf8').split('\n').filter((line) => line !== '' && !line.startsWith('#'));
  return new Map(lines.map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]));
}

describe('botserver keygen --out', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = makeTempDir('botserver-keygen-');
  });
  after(cleanupProcesses);

  it('writes a new 0600 file with the keys, the JWT key, the metrics token and one password per --secret, and prints no value', async () => {
    const path = join(dir, 'deploy.env');
    const result = await runCli(['keygen', '--out', path, '--secret', 'POSTGRES_PASSWORD', '--secret', 'REDIS_PASSWORD']);
    expect(result.code, result.stderr).to.equal(0);
    expect(statSync(path).mode & 0o777).to.equal(0o600);
    const values = readEnvFile(path);
    expect([...values.keys()]).to.deep.equal([
      'BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY', 'BOTSERVER_JWT_PRIVATE_KEY', 'BOTSERVER_METRICS_TOKEN', 'POSTGRES_PASSWORD', 'REDIS_PASSWORD',
    ]);
    for (const name of ['BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY', 'BOTSERVER_METRICS_TOKEN']) expect(values.get(name), name).to.match(/^[0-9a-f]{64}$/);
    for (const name of ['POSTGRES_PASSWORD', 'REDIS_PASSWORD']) expect(values.get(name), name).to.match(/^[0-9a-f]{32}$/);
    expect(new Set(values.values()).size).to.equal(values.size);
    // One line per variable, so that docker compose, kubectl --from-env-file and the configuration all read it.
    expect(values.get('BOTSERVER_JWT_PRIVATE_KEY')).to.match(/^-----BEGIN PRIVATE KEY-----(\\n[A-Za-z0-9+/=]+)+\\n-----END PRIVATE KEY-----$/);
    for (const value of values.values()) expect(result.stdout + result.stderr).to.not.include(value);
    expect(result.stdout).to.include('POSTGRES_PASSWORD');
  });

  it('is a configuration production accepts as it is (the PEM read back from its escaped line)', async () => {
    const path = join(dir, 'production.env');
    expect((await runCli(['keygen', '--out', path])).code).to.equal(0);
    const config = loadConfig({ ...Object.fromEntries(readEnvFile(path)), NODE_ENV: 'production', BOTSERVER_TRUST_PROXY: '1', BOTSERVER_DATA_DIR: dir });
    expect(config.production).to.equal(true);
    expect(config.secrets.jwtPrivateKeyPem).to.match(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----$/);
    expect(config.metricsToken).to.match(/^[0-9a-f]{64}$/);
  });

  it('never overwrites an existing file (exit 2, the file untouched)', async () => {
    const path = join(dir, 'existing.env');
    writeFileSync(path, 'BOTSERVER_JWT_SECRET=keep-me\n', { mode: 0o600 });
    const result = await runCli(['keygen', '--out', path]);
    expect(result.code).to.equal(2);
    expect(result.stderr.trim().split('\n')).to.have.length(1);
    expect(result.stderr).to.match(/--out .*already exists/);
    expect(readFileSync(path, 'utf8')).to.equal('BOTSERVER_JWT_SECRET=keep-me\n');
  });

  it('refuses a bad --secret name, a name keygen writes itself, or one given twice (a usage error naming --secret)', () => {
    for (const names of [['lower_case'], ['BOTSERVER_JWT_SECRET'], ['X', 'X'], ['A=B'], ['']]) {
      expect(() => envFileLines(names), names.join(' ')).to.throw(UsageError, /^--secret /);
    }
  });

  it('refuses --secret without --out: exit 2, one line naming --secret, nothing written', async () => {
    const result = await runCli(['keygen', '--secret', 'POSTGRES_PASSWORD']);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/^botserver: --secret needs --out\n$/);
    expect(result.stdout).to.equal('');
  });
});
