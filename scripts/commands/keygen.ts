import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { generateHexKey, generateJwtPrivateKeyPem } from '../../shared/config/index.js';
import { UsageError } from '../../shared/errors.js';

/** The three 256-bit keys `botserver keygen` prints (CONTRACT §1). */
export const KEY_NAMES = ['BOTSERVER_JWT_SECRET', 'BOTSERVER_ENCRYPTION_KEY', 'DATABASE_ENCRYPTION_KEY'] as const;

/** What `keygen --out` writes besides the keys: the JWT signing key and the metrics scrape token. */
export const ENV_FILE_NAMES = [...KEY_NAMES, 'BOTSERVER_JWT_PRIVATE_KEY', 'BOTSERVER_METRICS_TOKEN'] as const;

const SECRET_NAME = /^[A-Z][A-Z0-9_]{0,63}$/;

export function keyLines(): string[] {
  return KEY_NAMES.map((name) => `${name}=${generateHexKey()}`);
}

/**
 * Every secret a production deployment of botserver needs, as `NAME=value` lines for an env file: the three keys,
 * `BOTSERVER_JWT_PRIVATE_KEY` (a new RSA key, PEM on one line with `\n` escapes, which the configuration reads
 * back), `BOTSERVER_METRICS_TOKEN`, and a random 128-bit hex password for each name in `extraSecrets` (the
 * database's, Redis's, object storage's: whatever the deployment files ask for).
 */
export function envFileLines(extraSecrets: readonly string[] = []): string[] {
  for (const name of extraSecrets) {
    if (!SECRET_NAME.test(name)) throw new UsageError('--secret', `--secret ${JSON.stringify(name)} is not a variable name (A-Z, 0-9, _)`);
    if ((ENV_FILE_NAMES as readonly string[]).includes(name)) throw new UsageError('--secret', `--secret ${name}: keygen writes that one already`);
  }
  if (new Set(extraSecrets).size !== extraSecrets.length) throw new UsageError('--secret', '--secret names a variable twice');
  const pem = generateJwtPrivateKeyPem().trim().replaceAll('\n', '\\n');
  return [
    ...keyLines(),
    `BOTSERVER_JWT_PRIVATE_KEY=${pem}`,
    `BOTSERVER_METRICS_TOKEN=${randomBytes(32).toString('hex')}`,
    ...extraSecrets.map((name) => `${name}=${randomBytes(16).toString('hex')}`),
  ];
}

/** Writes the env file: a new file only (an existing one is never overwritten), readable by its owner alone. */
export function writeEnvFile(path: string, lines: readonly string[]): void {
  try {
    writeFileSync(path, `# written by botserver keygen; keep it secret (mode 0600)\n${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') throw new UsageError('--out', `--out ${path} already exists; keygen never overwrites keys (data encrypted under them would be lost)`);
    throw new UsageError('--out', `--out ${path} cannot be written (${code ?? 'error'})`);
  }
}
