import { hkdfSync } from 'node:crypto';
import type { Secrets } from './config/index.js';
import { KeyRing, parseHexKey, parsePreviousKeys } from './crypto/index.js';

/**
 * Every key the process holds, derived from configuration once. All are Buffers so `zeroize()` can wipe them at
 * shutdown.
 */
export class Keys {
  /** BOTSERVER_ENCRYPTION_KEY: job payloads and files. */
  readonly payloadRing: KeyRing;
  /** DATABASE_ENCRYPTION_KEY: encrypted columns. Its raw key also feeds the blind index (through HKDF). */
  readonly columnRing: KeyRing;
  readonly blindIndexKey: Buffer;
  /** BOTSERVER_JWT_SECRET: HMAC of refresh and session tokens at rest. */
  readonly tokenHmacKey: Buffer;
  /** Sub-keys of BOTSERVER_JWT_SECRET for the audit hash chain and for pseudonyms. */
  readonly auditChainKey: Buffer;
  readonly pseudonymKey: Buffer;
  readonly jwtPrivateKeyPem: string;

  constructor(secrets: Secrets) {
    this.payloadRing = new KeyRing({
      current: parseHexKey(secrets.encryptionKey, 'BOTSERVER_ENCRYPTION_KEY'),
      previous: parsePreviousKeys(secrets.previousKeys),
    });
    this.columnRing = new KeyRing({
      current: parseHexKey(secrets.databaseEncryptionKey, 'DATABASE_ENCRYPTION_KEY'),
      previous: parsePreviousKeys(secrets.previousKeys),
    });
    this.blindIndexKey = parseHexKey(secrets.databaseEncryptionKey, 'DATABASE_ENCRYPTION_KEY');
    this.tokenHmacKey = parseHexKey(secrets.jwtSecret, 'BOTSERVER_JWT_SECRET');
    this.auditChainKey = subKey(this.tokenHmacKey, 'botserver-audit-chain');
    this.pseudonymKey = subKey(this.tokenHmacKey, 'botserver-audit-pseudonym');
    this.jwtPrivateKeyPem = secrets.jwtPrivateKeyPem;
  }

  zeroize(): void {
    this.payloadRing.zeroize();
    this.columnRing.zeroize();
    for (const key of [this.blindIndexKey, this.tokenHmacKey, this.auditChainKey, this.pseudonymKey]) key.fill(0);
  }
}

function subKey(key: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), info, 32));
}
