import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';

export interface DevSecrets {
  jwtSecret: string;
  encryptionKey: string;
  databaseEncryptionKey: string;
  jwtPrivateKeyPem: string;
}

const SECRETS_FILE = 'secrets.json';
const JWT_KEY_FILE = 'jwt-private.pem';

/** Writes a file that only the owner may read, creating it atomically with the right mode. */
function writePrivateFile(path: string, content: string): void {
  writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
  chmodSync(path, 0o600);
}

export function generateHexKey(): string {
  return randomBytes(32).toString('hex');
}

export function generateJwtPrivateKeyPem(): string {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
}

function isDevSecretsFile(value: unknown): value is Omit<DevSecrets, 'jwtPrivateKeyPem'> {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return ['jwtSecret', 'encryptionKey', 'databaseEncryptionKey'].every(
    (name) => typeof record[name] === 'string' && /^[0-9a-f]{64}$/i.test(record[name]),
  );
}

/**
 * Development only: the keys are generated on first start and kept under the data directory (folder 0700,
 * files 0600) so that data encrypted by one run can be read by the next.
 */
export function loadOrCreateDevSecrets(dataDir: string): DevSecrets {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);
  const secretsPath = join(dataDir, SECRETS_FILE);
  const keyPath = join(dataDir, JWT_KEY_FILE);
  try {
    if (!existsSync(secretsPath)) {
      const fresh = { jwtSecret: generateHexKey(), encryptionKey: generateHexKey(), databaseEncryptionKey: generateHexKey() };
      writePrivateFile(secretsPath, `${JSON.stringify(fresh, null, 2)}\n`);
    }
    if (!existsSync(keyPath)) writePrivateFile(keyPath, generateJwtPrivateKeyPem());
  } catch (error) {
    // Another process of the same start may have created the files first; reading them below settles it.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const parsed: unknown = JSON.parse(readFileSync(secretsPath, 'utf8'));
  if (!isDevSecretsFile(parsed)) {
    throw new ConfigError('BOTSERVER_DATA_DIR', `${secretsPath} is not a valid secrets file; move it away to generate new keys`);
  }
  return { ...parsed, jwtPrivateKeyPem: readFileSync(keyPath, 'utf8') };
}
