import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { loadConfig, workerFamilies } from '../../shared/config/index.js';
import { DEPLOY_DIR, REPO_ROOT, SCHEMA_VARIABLES, at, interpolateAll, isObject, keygenValues, readYamlDocuments, text, type Json, type JsonObject } from '../helpers/deploy.js';

/**
 * deploy/compose.yaml read as data (no container engine runs here): the services the issue asks for, Redis as
 * BullMQ wants it in production, hardened botserver containers, and an environment that the configuration schema
 * accepts as a production configuration once compose has filled in what `botserver keygen --out` wrote.
 */

const README = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const DEPLOY_SECTION = /\n## Deploy\n([\s\S]*?)(?=\n## )/.exec(README)?.[1] ?? '';
/** The names the README's keygen command adds with --secret. */
const KEYGEN_SECRETS = [...(/botserver keygen --out deploy\/\.env((?:\s*\\?\s*--secret [A-Z0-9_]+)+)/.exec(DEPLOY_SECTION)?.[1] ?? '').matchAll(/--secret ([A-Z0-9_]+)/g)].map((match) => match[1] ?? '');
/** What the operator writes into deploy/.env by hand (README, Deploy), with example values. */
const OPERATOR_VALUES = { BOTSERVER_DOMAIN: 'chat.example.com', ZITADEL_HOST: 'auth.example.com' };

const raw = readYamlDocuments(join(DEPLOY_DIR, 'compose.yaml'))[0] as JsonObject;
const variables = new Map([...keygenValues(KEYGEN_SECRETS), ...Object.entries(OPERATOR_VALUES)]);
const used = new Set<string>();
let services: Record<string, JsonObject> = {};
let botserverServices: Array<[string, JsonObject]> = [];
const isBotserver = (service: JsonObject): boolean => typeof service.image === 'string' && service.image.startsWith('botserver:');
const commandOf = (service: JsonObject): Json | undefined => service.command;

function environmentOf(service: JsonObject): Record<string, string> {
  const environment = service.environment;
  if (!isObject(environment)) throw new Error('environment must be a map');
  return Object.fromEntries(Object.entries(environment).map(([name, value]) => [name, text(value)]));
}

describe('deploy/compose.yaml', () => {
  before(() => {
    // Throws, naming the variable, when compose would refuse to start for a missing required one.
    const compose = interpolateAll(raw, variables, used) as JsonObject;
    services = (compose.services ?? {}) as Record<string, JsonObject>;
    botserverServices = Object.entries(services).filter(([, service]) => isBotserver(service));
  });

  it('the README names the keygen command and the values an operator sets', () => {
    expect(DEPLOY_SECTION, 'README.md has a "## Deploy" section').to.not.equal('');
    expect(KEYGEN_SECRETS.length).to.be.greaterThan(0);
    for (const name of Object.keys(OPERATOR_VALUES)) expect(DEPLOY_SECTION).to.include(name);
  });

  it('every variable compose requires is written by `botserver keygen --out` or set by the operator as the README says', () => {
    // interpolateAll threw already if a required one were missing; here: nothing is read that nobody writes.
    for (const name of used) expect(variables.has(name) || /^(BOTSERVER_IMAGE|CADDY_TLS|ZITADEL_DOMAIN|ZITADEL_CLIENT_ID|ZITADEL_CLIENT_SECRET|LLM_BASE_URL|LLM_API_KEY|LLM_MODEL)$/.test(name), name).to.equal(true);
  });

  it('runs two API processes behind a TLS reverse proxy that balances over both', () => {
    const apis = botserverServices.filter(([, service]) => JSON.stringify(commandOf(service)) === '["api"]').map(([name]) => name);
    expect(apis).to.have.length(2);
    const proxy = services.proxy;
    expect(proxy?.image).to.match(/^caddy:\d/);
    expect(at(proxy, 'ports')).to.include('443:443');
    const caddyfile = readFileSync(join(DEPLOY_DIR, 'Caddyfile'), 'utf8');
    const site = /\{\$BOTSERVER_DOMAIN\} \{([\s\S]*?)\n\}/.exec(caddyfile)?.[1] ?? '';
    expect(site).to.match(/^\s*tls \{\$CADDY_TLS\}$/m);
    const upstreams = /reverse_proxy ([^{\n]+)/.exec(site)?.[1]?.trim().split(/\s+/) ?? [];
    expect([...upstreams].sort()).to.deep.equal(apis.map((name) => `${name}:8080`).sort());
    expect(site).to.match(/health_uri \/readyz/);
    expect(environmentOf(services['api-1'] as JsonObject).BOTSERVER_TRUST_PROXY).to.equal('1');
  });

  it('runs one process per worker family, and migrations before any of them', () => {
    for (const family of workerFamilies) {
      const running = botserverServices.filter(([, service]) => JSON.stringify(commandOf(service)) === JSON.stringify(['worker', family]));
      expect(running.map(([name]) => name), family).to.deep.equal([`worker-${family}`]);
    }
    expect(commandOf(services.migrate as JsonObject)).to.deep.equal(['migrate']);
    for (const [name, service] of botserverServices) {
      if (name === 'migrate') continue;
      expect(at(service, 'depends_on', 'migrate', 'condition'), name).to.equal('service_completed_successfully');
    }
  });

  it('runs Redis with an append-only file and noeviction (BullMQ production settings), and PostgreSQL, Qdrant, MinIO, Zitadel', () => {
    const command = (at(services.redis, 'command') as string[]).join(' ');
    expect(command).to.match(/--appendonly yes\b/);
    expect(command).to.match(/--maxmemory-policy noeviction\b/);
    expect(command).to.match(/--requirepass \S+/);
    expect(services.postgres?.image).to.match(/^postgres:\d+/);
    expect(services.qdrant?.image).to.match(/^qdrant\/qdrant:v\d/);
    expect(services.minio?.image).to.match(/^minio\/minio:RELEASE\./);
    expect(services.zitadel?.image).to.match(/^ghcr\.io\/zitadel\/zitadel:v\d/);
    for (const [name, service] of Object.entries(services)) expect(text(service.image), name).to.not.match(/:latest$|^[^:]+$/);
  });

  it('hardens every botserver container: read-only root, /tmp on tmpfs, no capabilities, no privilege escalation, exec-form commands', () => {
    expect(botserverServices.length).to.equal(2 + workerFamilies.length + 1);
    for (const [name, service] of botserverServices) {
      expect(service.read_only, name).to.equal(true);
      expect(service.cap_drop, name).to.deep.equal(['ALL']);
      expect(service.cap_add, name).to.equal(undefined);
      expect(service.privileged ?? false, name).to.equal(false);
      expect(service.security_opt, name).to.include('no-new-privileges:true');
      expect((service.tmpfs as string[]).some((mount) => mount.startsWith('/tmp')), name).to.equal(true);
      expect(service.user, `${name} keeps the image's non-root user`).to.equal(undefined);
      expect(Array.isArray(commandOf(service)), `${name}: command in exec form`).to.equal(true);
      const healthcheck = at(service, 'healthcheck', 'test');
      if (healthcheck !== undefined) expect((healthcheck as string[])[0], `${name}: no shell in distroless`).to.equal('CMD');
      const volumes = (service.volumes as string[]).map((volume) => volume.split(':'));
      expect(volumes, name).to.deep.include(['botserver-data', environmentOf(service).BOTSERVER_DATA_DIR]);
    }
  });

  it('gives botserver only variables the configuration schema knows', () => {
    for (const [name, service] of botserverServices) {
      for (const variable of Object.keys(environmentOf(service))) expect(SCHEMA_VARIABLES.has(variable), `${name}: ${variable}`).to.equal(true);
      expect(service.env_file, `${name}: every variable is named in compose.yaml`).to.equal(undefined);
    }
  });

  it('is a configuration production accepts, for every botserver service (keys, JWT key, trusted proxy, features)', () => {
    for (const [name, service] of botserverServices) {
      const env = environmentOf(service);
      expect(env.NODE_ENV, name).to.equal('production');
      const config = loadConfig(env);
      expect(config.production, name).to.equal(true);
      expect(config.secrets.jwtSecret, name).to.equal(variables.get('BOTSERVER_JWT_SECRET'));
      expect(config.secrets.jwtPrivateKeyPem, name).to.match(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(config.queuePrefix, name).to.equal('{botserver}');
      expect(config.allowedOrigins, name).to.deep.equal(['https://chat.example.com']);
      expect(config.metricsToken, name).to.equal(variables.get('BOTSERVER_METRICS_TOKEN'));
      expect(config.redisUrl, name).to.equal(`redis://:${variables.get('REDIS_PASSWORD') ?? '?'}@redis:6379`);
    }
  });

  it('never writes a secret into the file itself: every secret-looking value is interpolated', () => {
    const secretish = /PASSWORD|SECRET|_KEY$|TOKEN|MASTERKEY/;
    for (const [name, service] of Object.entries((raw.services ?? {}) as Record<string, JsonObject>)) {
      const environment = service.environment;
      if (!isObject(environment)) continue;
      for (const [variable, value] of Object.entries(environment)) {
        if (!secretish.test(variable) || value === null || value === '') continue;
        expect(text(value), `${name}: ${variable}`).to.match(/^\$\{[A-Z0-9_]+(:[?-][^}]*)?\}$/);
      }
    }
  });
});
