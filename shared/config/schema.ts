import { z } from 'zod';
import { invalidAllowEntry } from '../net/egress.js';

/** The environment variables of CONTRACT §2, each with its default. Parsed once at start. */

const hexKey = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex characters (256 bits)')
  .optional();

const boolean = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .optional()
    .transform((value) => (value === undefined ? fallback : ['true', '1', 'yes'].includes(value)));

const positiveInt = (fallback: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a positive whole number')
    .optional()
    .transform((value) => (value === undefined ? fallback : Number(value)))
    .refine((value) => Number.isSafeInteger(value) && value > 0, 'must be a positive whole number');

const optionalText = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

const url = (protocols: string[]) =>
  z
    .string()
    .refine((value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    }, `must be a URL (${protocols.join(' or ')})`);

const optionalUrl = (protocols: string[]) =>
  optionalText.pipe(url(protocols).optional());

const commaList = z
  .string()
  .optional()
  .transform((value) => (value ?? '').split(',').map((item) => item.trim()).filter((item) => item !== ''));

/** `host:port` items (`[v6]:port` for IPv6) of REDIS_SENTINELS. */
const sentinelList = commaList.transform((items, context) =>
  items.flatMap((item) => {
    const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item);
    const port = Number(match?.[2]);
    if (match?.[1] === undefined || port < 1 || port > 65535) {
      context.addIssue({ code: 'custom', message: 'must be a comma list of host:port (sentinel addresses)' });
      return [];
    }
    return [{ host: match[1].replace(/^\[|\]$/g, ''), port }];
  }),
);

const FEATURES = ['vectordb', 'email'] as const;
const WORKER_FAMILIES = ['reply', 'embed', 'email', 'files', 'audit'] as const;

export const envSchema = z.object({
  NODE_ENV: z.enum(['production', 'development', 'test']).default('development'),
  BOTSERVER_JWT_SECRET: hexKey,
  BOTSERVER_ENCRYPTION_KEY: hexKey,
  DATABASE_ENCRYPTION_KEY: hexKey,
  BOTSERVER_PREVIOUS_KEYS: z
    .string()
    .optional()
    .transform((value) => value ?? '')
    .refine(
      (value) => value.trim() === '' || value.split(',').every((entry) => /^[A-Za-z0-9_-]{1,64}:[0-9a-fA-F]{64}$/.test(entry.trim())),
      'must be a comma list of kid:<64 hex>',
    ),
  BOTSERVER_JWT_PRIVATE_KEY: optionalText,
  BOTSERVER_DATA_DIR: z.string().min(1).default('./.botserver'),
  DATABASE_URL: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/botserver'),
  REDIS_URL: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
  REDIS_SENTINELS: sentinelList,
  REDIS_SENTINEL_NAME: optionalText,
  REDIS_SENTINEL_PASSWORD: optionalText,
  BOTSERVER_QUEUE_PREFIX: z
    .string()
    .regex(/^(?=.{1,64}$)[\w.-]*(\{[\w.-]+\}[\w.-]*)?$/, 'must be 1-64 letters, digits, _ . - with at most one {hash tag}')
    .default('bull'),
  BOTSERVER_HOST: z.string().min(1).default('127.0.0.1'),
  BOTSERVER_PORT: z
    .string()
    .regex(/^\d+$/, 'must be a port number')
    .default('8080')
    .transform(Number)
    .refine((port) => port >= 0 && port <= 65535, 'must be a port number (0-65535)'),
  BOTSERVER_FEATURES: commaList.refine(
    (items) => items.every((item) => (FEATURES as readonly string[]).includes(item)),
    `may only list ${FEATURES.join(', ')}`,
  ),
  ZITADEL_DOMAIN: optionalUrl(['https:', 'http:']),
  ZITADEL_CLIENT_ID: optionalText,
  ZITADEL_CLIENT_SECRET: optionalText,
  BOTSERVER_OIDC_REQUIRE_VERIFIED_EMAIL: boolean(true),
  /** Unset: the environment's default (see loadConfig); set, even to an empty value, it replaces that default. */
  BOTSERVER_EGRESS_ALLOW: z
    .string()
    .optional()
    .transform((value) => (value === undefined ? undefined : value.split(',').map((item) => item.trim()).filter((item) => item !== '')))
    .superRefine((items, context) => {
      const bad = items === undefined ? undefined : invalidAllowEntry(items);
      if (bad !== undefined) context.addIssue({ code: 'custom', message: `entry ${bad} must be an address, a CIDR (10.1.2.0/24), a host name or loopback` });
    }),
  BOTSERVER_ENABLE_AUDIT: boolean(true),
  BOTSERVER_AUDIT_API_SAMPLE_RATE: z
    .string()
    .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, 'must be a number from 0 to 1')
    .optional()
    .transform((value) => (value === undefined ? 0 : Number(value))),
  BOTSERVER_REQUIRE_MFA: boolean(false),
  BOTSERVER_SESSION_TIMEOUT: positiveInt(3600),
  BOTSERVER_MAX_LOGIN_ATTEMPTS: positiveInt(5),
  BOTSERVER_LOCKOUT_DURATION: positiveInt(900),
  BOTSERVER_ALLOWED_ORIGINS: commaList
    .transform((items) => (items.length === 0 ? ['http://127.0.0.1:8080', 'http://localhost:8080'] : items))
    .refine((items) => !items.some((item) => item.includes('*')), 'may not contain a wildcard * (credentials are sent)')
    .refine(
      (items) =>
        items.every((item) => {
          try {
            const parsed = new URL(item);
            return ['http:', 'https:'].includes(parsed.protocol) && parsed.origin === item;
          } catch {
            return false;
          }
        }),
      'must be a comma list of origins such as https://chat.example.com (scheme, host and port only)',
    ),
  BOTSERVER_RATE_LIMIT_PER_IP: positiveInt(100),
  BOTSERVER_RATE_LIMIT_PER_USER: positiveInt(1000),
  BOTSERVER_MAX_UPLOAD_SIZE: positiveInt(104857600),
  BOTSERVER_UPLOAD_TYPES: commaList.refine(
    (items) => items.every((item) => /^[a-z0-9][a-z0-9.+-]*\/([a-z0-9][a-z0-9.+-]*|\*)$/i.test(item)),
    'must be a comma list of media types such as application/pdf or image/*',
  ),
  BOTSERVER_WS_MAX_MESSAGE_SIZE: positiveInt(10485760),
  BOTSERVER_WS_RATE_LIMIT: positiveInt(30),
  BOTSERVER_HEALTH_PORT: optionalText.pipe(
    z
      .string()
      .regex(/^\d{1,5}$/, 'must be a port number')
      .transform(Number)
      .refine((port) => port >= 1 && port <= 65535, 'must be a port number (1-65535)')
      .optional(),
  ),
  BOTSERVER_JOB_LOCK_MS: positiveInt(5000).refine((value) => value >= 1000, 'must be at least 1000 (milliseconds)'),
  BOTSERVER_TLS_CERT: optionalText,
  BOTSERVER_TLS_KEY: optionalText,
  BOTSERVER_TLS_MIN_VERSION: z.enum(['1.2', '1.3']).default('1.3'),
  LLM_BASE_URL: optionalUrl(['https:', 'http:']),
  LLM_API_KEY: optionalText,
  LLM_MODEL: optionalText,
  EMBEDDINGS_BASE_URL: optionalUrl(['https:', 'http:']),
  EMBEDDINGS_MODEL: optionalText,
  QDRANT_URL: optionalUrl(['https:', 'http:']),
  QDRANT_API_KEY: optionalText,
  S3_ENDPOINT: optionalUrl(['https:', 'http:']),
  S3_BUCKET: optionalText,
  S3_REGION: optionalText,
  AWS_ACCESS_KEY_ID: optionalText,
  AWS_SECRET_ACCESS_KEY: optionalText,
  BOTSERVER_METRICS_TOKEN: optionalText.refine(
    (value) => value === undefined || value.length >= 16,
    'must be at least 16 characters',
  ),
  BOTSERVER_TRUST_PROXY: optionalText.refine(
    (value) => value === undefined || /^(\d+|[0-9a-fA-F.:/,\s]+|loopback|linklocal|uniquelocal)$/.test(value),
    'must be a hop count or a comma list of addresses/CIDRs',
  ),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).optional(),
  BOTSERVER_LOG_DIR: optionalText,
});

export type RawEnv = z.infer<typeof envSchema>;
export const features = FEATURES;
export const workerFamilies = WORKER_FAMILIES;
export type Feature = (typeof FEATURES)[number];
export type WorkerFamily = (typeof WORKER_FAMILIES)[number];
