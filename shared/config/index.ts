import { createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { DEFAULT_UPLOAD_TYPES } from '../files/allowlist.js';
import { LOOPBACK_ENTRY } from '../net/egress.js';
import { loadOrCreateDevSecrets } from './devSecrets.js';
import { envSchema, type Feature, type RawEnv } from './schema.js';

export { envSchema, features, workerFamilies, type Feature, type WorkerFamily } from './schema.js';
export { generateHexKey, generateJwtPrivateKeyPem } from './devSecrets.js';

export interface Secrets {
  jwtSecret: string;
  encryptionKey: string;
  databaseEncryptionKey: string;
  previousKeys: string;
  jwtPrivateKeyPem: string;
}

export interface Config {
  env: RawEnv['NODE_ENV'];
  production: boolean;
  secrets: Secrets;
  dataDir: string;
  databaseUrl: string;
  redisUrl: string;
  /** Set: Redis is reached through Sentinel (REDIS_URL then gives only the master's credentials, database and TLS). */
  redisSentinel: { sentinels: ReadonlyArray<{ host: string; port: number }>; name: string; password: string | undefined } | undefined;
  /** BullMQ key prefix; a `{hash tag}` keeps every queue key in one Redis Cluster slot. */
  queuePrefix: string;
  host: string;
  port: number;
  features: ReadonlySet<Feature>;
  oidc: { issuer: string; clientId: string; clientSecret: string | undefined } | undefined;
  /** OIDC logins whose provider says `email_verified: false` are refused (BOTSERVER_OIDC_REQUIRE_VERIFIED_EMAIL). */
  oidcRequireVerifiedEmail: boolean;
  /** BOTSERVER_EGRESS_ALLOW: what tenant-chosen connections may reach beyond public addresses (see shared/net/egress.ts). */
  egressAllow: readonly string[];
  auditEnabled: boolean;
  /** Fraction (0..1) of API requests recorded as `api.call` audit events; 0 = none. */
  auditApiSampleRate: number;
  requireMfa: boolean;
  sessionTimeoutSeconds: number;
  maxLoginAttempts: number;
  lockoutDurationSeconds: number;
  allowedOrigins: readonly string[];
  rateLimitPerIp: number;
  rateLimitPerUser: number;
  maxUploadSize: number;
  /** Media types an upload may have (sniffed from its bytes); exact types or `major/*`. */
  uploadTypes: readonly string[];
  wsMaxMessageSize: number;
  /** Events one socket may send per 10 seconds (BOTSERVER_WS_RATE_LIMIT); more are refused, and five refusals in a row end it. */
  wsEventsPer10s: number;
  /** Port of a worker process's `/healthz` and `/readyz` listener (on `host`); undefined = none. */
  healthPort: number | undefined;
  /** BullMQ lock of an active job and stalled-job check interval (ms): how soon a crashed worker's jobs run again. */
  jobLockMs: number;
  tls: { certPath: string; keyPath: string; minVersion: 'TLSv1.2' | 'TLSv1.3' } | undefined;
  llm: { baseUrl: string; apiKey: string | undefined; model: string | undefined } | undefined;
  embeddings: { baseUrl: string; model: string | undefined } | undefined;
  qdrant: { url: string; apiKey: string | undefined } | undefined;
  s3: { endpoint: string | undefined; bucket: string; region: string; accessKeyId: string | undefined; secretAccessKey: string | undefined } | undefined;
  metricsToken: string | undefined;
  trustProxy: string | undefined;
  logLevel: NonNullable<RawEnv['LOG_LEVEL']>;
  logDir: string | undefined;
  /** Insecure but allowed settings, to be logged loudly at start. */
  warnings: readonly string[];
}

function parseEnv(env: NodeJS.ProcessEnv): RawEnv {
  const result = envSchema.safeParse(env);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const variable = issue?.path.map(String).join('.') || 'environment';
  throw new ConfigError(variable, issue?.message ?? 'invalid');
}

function readJwtPrivateKey(value: string): string {
  const pem = value.startsWith('-----BEGIN') ? value.replace(/\\n/g, '\n') : readPemFile(value);
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'rsa') throw new Error('not RSA');
  } catch {
    throw new ConfigError('BOTSERVER_JWT_PRIVATE_KEY', 'must be an RSA private key in PEM form (or the path of one)');
  }
  return pem;
}

function readPemFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    // Missing, a directory, unreadable: all the same bad configuration (and never the value in the message).
    throw new ConfigError('BOTSERVER_JWT_PRIVATE_KEY', 'is neither a PEM key nor the path of a readable file');
  }
}

function resolveSecrets(raw: RawEnv, dataDir: string): Secrets {
  const production = raw.NODE_ENV === 'production';
  if (production) {
    for (const name of ['BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY', 'BOTSERVER_JWT_PRIVATE_KEY'] as const) {
      if (raw[name] === undefined) throw new ConfigError(name, 'is required in production (run `botserver keygen`)');
    }
  }
  const needsDev = [raw.BOTSERVER_JWT_SECRET, raw.BOTSERVER_ENCRYPTION_KEY, raw.DATABASE_ENCRYPTION_KEY, raw.BOTSERVER_JWT_PRIVATE_KEY].some(
    (value) => value === undefined,
  );
  const dev = needsDev ? loadOrCreateDevSecrets(dataDir) : undefined;
  const pick = (value: string | undefined, fallback: string | undefined, name: string): string => {
    const chosen = value ?? fallback;
    if (chosen === undefined) throw new ConfigError(name, 'is missing');
    return chosen.toLowerCase();
  };
  const secrets: Secrets = {
    jwtSecret: pick(raw.BOTSERVER_JWT_SECRET, dev?.jwtSecret, 'BOTSERVER_JWT_SECRET'),
    encryptionKey: pick(raw.BOTSERVER_ENCRYPTION_KEY, dev?.encryptionKey, 'BOTSERVER_ENCRYPTION_KEY'),
    databaseEncryptionKey: pick(raw.DATABASE_ENCRYPTION_KEY, dev?.databaseEncryptionKey, 'DATABASE_ENCRYPTION_KEY'),
    previousKeys: raw.BOTSERVER_PREVIOUS_KEYS,
    jwtPrivateKeyPem: raw.BOTSERVER_JWT_PRIVATE_KEY === undefined ? (dev?.jwtPrivateKeyPem ?? '') : readJwtPrivateKey(raw.BOTSERVER_JWT_PRIVATE_KEY),
  };
  const distinct = new Set([secrets.jwtSecret, secrets.encryptionKey, secrets.databaseEncryptionKey]);
  if (distinct.size !== 3) throw new ConfigError('DATABASE_ENCRYPTION_KEY', 'the three keys must differ from each other');
  return secrets;
}

function requirePair(a: string | undefined, b: string | undefined, nameB: string, nameA: string): void {
  if (a !== undefined && b === undefined) throw new ConfigError(nameB, `is required when ${nameA} is set`);
}

function resolveTls(raw: RawEnv): Config['tls'] {
  requirePair(raw.BOTSERVER_TLS_CERT, raw.BOTSERVER_TLS_KEY, 'BOTSERVER_TLS_KEY', 'BOTSERVER_TLS_CERT');
  requirePair(raw.BOTSERVER_TLS_KEY, raw.BOTSERVER_TLS_CERT, 'BOTSERVER_TLS_CERT', 'BOTSERVER_TLS_KEY');
  if (raw.BOTSERVER_TLS_CERT === undefined || raw.BOTSERVER_TLS_KEY === undefined) return undefined;
  for (const [name, path] of [['BOTSERVER_TLS_CERT', raw.BOTSERVER_TLS_CERT], ['BOTSERVER_TLS_KEY', raw.BOTSERVER_TLS_KEY]] as const) {
    if (!existsSync(path)) throw new ConfigError(name, 'is not the path of a readable PEM file');
  }
  return { certPath: raw.BOTSERVER_TLS_CERT, keyPath: raw.BOTSERVER_TLS_KEY, minVersion: raw.BOTSERVER_TLS_MIN_VERSION === '1.2' ? 'TLSv1.2' : 'TLSv1.3' };
}

function resolveSentinel(raw: RawEnv): Config['redisSentinel'] {
  if (raw.REDIS_SENTINELS.length === 0) {
    if (raw.REDIS_SENTINEL_NAME !== undefined) throw new ConfigError('REDIS_SENTINELS', 'is required when REDIS_SENTINEL_NAME is set');
    return undefined;
  }
  if (raw.REDIS_SENTINEL_NAME === undefined) throw new ConfigError('REDIS_SENTINEL_NAME', 'is required when REDIS_SENTINELS is set (the monitored master group)');
  return { sentinels: raw.REDIS_SENTINELS, name: raw.REDIS_SENTINEL_NAME, password: raw.REDIS_SENTINEL_PASSWORD };
}

function securityWarnings(raw: RawEnv, tls: Config['tls']): string[] {
  const warnings: string[] = [];
  const production = raw.NODE_ENV === 'production';
  if (production && tls === undefined && raw.BOTSERVER_TRUST_PROXY === undefined) {
    throw new ConfigError('BOTSERVER_TLS_CERT', 'production needs TLS (BOTSERVER_TLS_CERT/KEY) or a TLS-terminating proxy (BOTSERVER_TRUST_PROXY)');
  }
  if (production && raw.BOTSERVER_ALLOWED_ORIGINS.some((origin) => origin.startsWith('http://'))) {
    warnings.push('BOTSERVER_ALLOWED_ORIGINS lists plain-HTTP origins in production');
  }
  if (raw.BOTSERVER_EGRESS_ALLOW === undefined && raw.NODE_ENV === 'development') {
    warnings.push('BOTSERVER_EGRESS_ALLOW is unset: in development tenant-configured connections (e-mail channels) may reach loopback addresses');
  }
  if (raw.BOTSERVER_ENABLE_AUDIT === false) warnings.push('BOTSERVER_ENABLE_AUDIT=false: no audit trail is written');
  if (production && !raw.BOTSERVER_REQUIRE_MFA) warnings.push('BOTSERVER_REQUIRE_MFA=false: admins may log in without a second factor');
  return warnings;
}

/** Reads and checks every variable once. Throws ConfigError naming the first bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw = parseEnv(env);
  const production = raw.NODE_ENV === 'production';
  const dataDir = isAbsolute(raw.BOTSERVER_DATA_DIR) ? raw.BOTSERVER_DATA_DIR : resolve(raw.BOTSERVER_DATA_DIR);
  requirePair(raw.ZITADEL_DOMAIN, raw.ZITADEL_CLIENT_ID, 'ZITADEL_CLIENT_ID', 'ZITADEL_DOMAIN');
  if (raw.BOTSERVER_FEATURES.includes('vectordb') && raw.QDRANT_URL === undefined) {
    throw new ConfigError('QDRANT_URL', 'is required when BOTSERVER_FEATURES lists vectordb');
  }
  requirePair(raw.S3_ENDPOINT ?? raw.S3_REGION, raw.S3_BUCKET, 'S3_BUCKET', 'S3_ENDPOINT or S3_REGION');
  const tls = resolveTls(raw);
  const secrets = resolveSecrets(raw, dataDir);
  const warnings = securityWarnings(raw, tls);
  return {
    env: raw.NODE_ENV,
    production,
    secrets,
    dataDir,
    databaseUrl: raw.DATABASE_URL,
    redisUrl: raw.REDIS_URL,
    redisSentinel: resolveSentinel(raw),
    queuePrefix: raw.BOTSERVER_QUEUE_PREFIX,
    host: raw.BOTSERVER_HOST,
    port: raw.BOTSERVER_PORT,
    features: new Set(raw.BOTSERVER_FEATURES as Feature[]),
    oidc:
      raw.ZITADEL_DOMAIN === undefined || raw.ZITADEL_CLIENT_ID === undefined
        ? undefined
        : { issuer: raw.ZITADEL_DOMAIN, clientId: raw.ZITADEL_CLIENT_ID, clientSecret: raw.ZITADEL_CLIENT_SECRET },
    oidcRequireVerifiedEmail: raw.BOTSERVER_OIDC_REQUIRE_VERIFIED_EMAIL,
    // Unset: loopback outside production (local mail servers work), nothing in production; set: exactly its entries.
    egressAllow: raw.BOTSERVER_EGRESS_ALLOW ?? (production ? [] : [LOOPBACK_ENTRY]),
    auditEnabled: raw.BOTSERVER_ENABLE_AUDIT,
    auditApiSampleRate: raw.BOTSERVER_AUDIT_API_SAMPLE_RATE,
    requireMfa: raw.BOTSERVER_REQUIRE_MFA,
    sessionTimeoutSeconds: raw.BOTSERVER_SESSION_TIMEOUT,
    maxLoginAttempts: raw.BOTSERVER_MAX_LOGIN_ATTEMPTS,
    lockoutDurationSeconds: raw.BOTSERVER_LOCKOUT_DURATION,
    allowedOrigins: raw.BOTSERVER_ALLOWED_ORIGINS,
    rateLimitPerIp: raw.BOTSERVER_RATE_LIMIT_PER_IP,
    rateLimitPerUser: raw.BOTSERVER_RATE_LIMIT_PER_USER,
    maxUploadSize: raw.BOTSERVER_MAX_UPLOAD_SIZE,
    uploadTypes: raw.BOTSERVER_UPLOAD_TYPES.length === 0 ? DEFAULT_UPLOAD_TYPES : raw.BOTSERVER_UPLOAD_TYPES.map((item) => item.toLowerCase()),
    wsMaxMessageSize: raw.BOTSERVER_WS_MAX_MESSAGE_SIZE,
    wsEventsPer10s: raw.BOTSERVER_WS_RATE_LIMIT,
    healthPort: raw.BOTSERVER_HEALTH_PORT,
    jobLockMs: raw.BOTSERVER_JOB_LOCK_MS,
    tls,
    llm: raw.LLM_BASE_URL === undefined ? undefined : { baseUrl: raw.LLM_BASE_URL, apiKey: raw.LLM_API_KEY, model: raw.LLM_MODEL },
    embeddings: raw.EMBEDDINGS_BASE_URL === undefined ? undefined : { baseUrl: raw.EMBEDDINGS_BASE_URL, model: raw.EMBEDDINGS_MODEL },
    qdrant: raw.QDRANT_URL === undefined ? undefined : { url: raw.QDRANT_URL, apiKey: raw.QDRANT_API_KEY },
    s3:
      raw.S3_BUCKET === undefined
        ? undefined
        : {
            endpoint: raw.S3_ENDPOINT,
            bucket: raw.S3_BUCKET,
            region: raw.S3_REGION ?? 'us-east-1',
            accessKeyId: raw.AWS_ACCESS_KEY_ID,
            secretAccessKey: raw.AWS_SECRET_ACCESS_KEY,
          },
    metricsToken: raw.BOTSERVER_METRICS_TOKEN,
    trustProxy: raw.BOTSERVER_TRUST_PROXY,
    logLevel: raw.LOG_LEVEL ?? (production ? 'info' : 'debug'),
    logDir: raw.BOTSERVER_LOG_DIR,
    warnings,
  };
}
