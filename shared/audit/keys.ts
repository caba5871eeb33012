import { hkdfSync } from 'node:crypto';
import { keyId } from '../crypto/index.js';

/** The two keys of the audit chain: the chain's HMAC key and the key of the identity pseudonyms it hashes. */
export interface ChainKeys {
  chainKey: Buffer;
  pseudonymKey: Buffer;
}

/** A key set named by its kid, which every row hashed with it records (`audit_events.key_id`). */
export interface AuditKeySet extends ChainKeys {
  kid: string;
}

/** The current key set (new rows) and the earlier ones still configured (verification of older rows). */
export interface AuditKeyring {
  readonly current: AuditKeySet;
  /** The current set first. */
  readonly all: readonly AuditKeySet[];
  find(kid: string): AuditKeySet | undefined;
}

/** Either a whole keyring (what processes hold) or one plain key set (a keyring of one). */
export type ChainKeySource = ChainKeys | AuditKeyring;

/** The kid of a chain key: `audit-` and its public fingerprint (shared/keys.ts derives kids the same way). */
export function auditKid(chainKey: Buffer): string {
  return `audit-${keyId(chainKey)}`;
}

function isKeyring(source: ChainKeySource): source is AuditKeyring {
  return 'current' in source;
}

export function toAuditKeyring(source: ChainKeySource): AuditKeyring {
  if (isKeyring(source)) return source;
  const set: AuditKeySet = { kid: auditKid(source.chainKey), chainKey: source.chainKey, pseudonymKey: source.pseudonymKey };
  return { current: set, all: [set], find: (kid) => (kid === set.kid ? set : undefined) };
}

/** HKDF sub-key of the chain key that signs verification checkpoints (never used for rows). */
export function checkpointKey(set: AuditKeySet): Buffer {
  return Buffer.from(hkdfSync('sha256', set.chainKey, Buffer.alloc(0), 'botserver-audit-checkpoint', 32));
}
