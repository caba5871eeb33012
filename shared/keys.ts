import { hkdfSync } from 'node:crypto';
import type { AuditKeyring, AuditKeySet } from './audit/keys.js';
import type { Secrets } from './config/index.js';
import { KeyRing, keyId, parseHexKey, parsePreviousKeys } from './crypto/index.js';

/**
 * Every purpose a key is derived for, with the root it is derived from (HKDF-SHA256, empty salt, the label as
 * info). A derived key never serves two purposes, and knowing one reveals neither its root nor its siblings. The
 * audit labels and the blind index's are the ones used before key ids existed, so stored chains and indexes
 * still verify.
 */
export const KEY_PURPOSES = {
  token: { root: 'BOTSERVER_JWT_SECRET', label: 'botserver-token-hash', kidPrefix: 'token' },
  recovery: { root: 'BOTSERVER_JWT_SECRET', label: 'botserver-recovery-code', kidPrefix: 'recovery' },
  auditChain: { root: 'BOTSERVER_JWT_SECRET', label: 'botserver-audit-chain', kidPrefix: 'audit' },
  auditPseudonym: { root: 'BOTSERVER_JWT_SECRET', label: 'botserver-audit-pseudonym', kidPrefix: 'pseudonym' },
  oidcFlow: { root: 'BOTSERVER_JWT_SECRET', label: 'botserver-oidc-flow', kidPrefix: 'oidc' },
  blindIndex: { root: 'DATABASE_ENCRYPTION_KEY', label: 'botserver-blind-index', kidPrefix: 'index' },
} as const;
export type KeyPurpose = keyof typeof KEY_PURPOSES;

export interface PurposeKey {
  /** `<purpose>-<16 hex>`: a public fingerprint of the derived key, stored beside what the key protects. */
  kid: string;
  key: Buffer;
}

/** The current key of a purpose and the ones derived from previous roots (BOTSERVER_PREVIOUS_KEYS), by kid. */
export interface PurposeKeyring {
  readonly current: PurposeKey;
  readonly previous: readonly PurposeKey[];
  find(kid: string): PurposeKey | undefined;
}

export function deriveKey(root: Buffer, purpose: KeyPurpose): PurposeKey {
  const { label, kidPrefix } = KEY_PURPOSES[purpose];
  const key = Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), label, 32));
  return { kid: `${kidPrefix}-${keyId(key)}`, key };
}

function purposeKeyring(current: Buffer, previousRoots: readonly Buffer[], purpose: KeyPurpose): PurposeKeyring {
  const own = deriveKey(current, purpose);
  const previous = previousRoots.map((root) => deriveKey(root, purpose)).filter((key) => key.kid !== own.kid);
  const byKid = new Map([own, ...previous].map((key) => [key.kid, key]));
  return { current: own, previous, find: (kid) => byKid.get(kid) };
}

/** The audit chain key and the pseudonym key of one root, named by the chain key's kid (rows record it). */
function auditKeySet(root: Buffer): AuditKeySet {
  const chain = deriveKey(root, 'auditChain');
  return { kid: chain.kid, chainKey: chain.key, pseudonymKey: deriveKey(root, 'auditPseudonym').key };
}

function auditKeyring(current: Buffer, previousRoots: readonly Buffer[]): AuditKeyring {
  const own = auditKeySet(current);
  const all = [own, ...previousRoots.map(auditKeySet).filter((set) => set.kid !== own.kid)];
  const byKid = new Map(all.map((set) => [set.kid, set]));
  return { current: own, all, find: (kid) => byKid.get(kid) };
}

/**
 * Every key the process holds, derived from configuration once. All are Buffers so `zeroize()` can wipe them at
 * shutdown. Keys derived from a root listed in BOTSERVER_PREVIOUS_KEYS only verify (audit rows, recovery codes,
 * e-mail lookups) or decrypt; nothing new is made with them.
 */
export class Keys {
  /** BOTSERVER_ENCRYPTION_KEY: job payloads and files. */
  readonly payloadRing: KeyRing;
  /** DATABASE_ENCRYPTION_KEY: encrypted columns. */
  readonly columnRing: KeyRing;
  /** Input of the blind index (`blindIndex` derives the `botserver-blind-index` key from it): the current root. */
  readonly blindIndexKey: Buffer;
  /** Roots of earlier DATABASE_ENCRYPTION_KEYs, for lookups of rows indexed before a rotation. */
  readonly previousBlindIndexKeys: readonly Buffer[];
  readonly blindIndexKid: string;
  /** HMAC of refresh tokens, cookie secrets and CSRF tokens at rest: the current key only (a rotation ends them). */
  readonly tokenHmacKey: Buffer;
  readonly tokenKid: string;
  /** Recovery codes are stored as `<kid>:<hmac>`, verified with the key their kid names. */
  readonly recoveryCodeKeys: PurposeKeyring;
  /** Roots that hashed recovery codes before key ids existed (stored as a bare hmac): current and previous secrets. */
  readonly legacyRecoveryRoots: readonly Buffer[];
  /** The audit chain's key sets: rows record the kid of the one they were hashed with. */
  readonly auditKeys: AuditKeyring;
  /** The current audit key set (new rows, erasure pseudonyms). */
  readonly auditChainKey: Buffer;
  readonly pseudonymKey: Buffer;
  /** Signs the OIDC flow cookie. */
  readonly oidcFlowKey: Buffer;
  readonly jwtPrivateKeyPem: string;
  readonly #held: Buffer[] = [];

  constructor(secrets: Secrets) {
    const previous = parsePreviousKeys(secrets.previousKeys);
    this.payloadRing = new KeyRing({ current: parseHexKey(secrets.encryptionKey, 'BOTSERVER_ENCRYPTION_KEY'), previous: parsePreviousKeys(secrets.previousKeys) });
    this.columnRing = new KeyRing({ current: parseHexKey(secrets.databaseEncryptionKey, 'DATABASE_ENCRYPTION_KEY'), previous: parsePreviousKeys(secrets.previousKeys) });
    // Previous keys are listed without saying which variable they replaced: every purpose may use every one of them.
    const previousRoots = previous.map((entry) => entry.key);
    const jwtRoot = parseHexKey(secrets.jwtSecret, 'BOTSERVER_JWT_SECRET');

    this.blindIndexKey = parseHexKey(secrets.databaseEncryptionKey, 'DATABASE_ENCRYPTION_KEY');
    this.previousBlindIndexKeys = previousRoots;
    this.blindIndexKid = deriveKey(this.blindIndexKey, 'blindIndex').kid;
    const token = deriveKey(jwtRoot, 'token');
    this.tokenHmacKey = token.key;
    this.tokenKid = token.kid;
    this.recoveryCodeKeys = purposeKeyring(jwtRoot, previousRoots, 'recovery');
    this.legacyRecoveryRoots = [jwtRoot, ...previousRoots];
    this.auditKeys = auditKeyring(jwtRoot, previousRoots);
    this.auditChainKey = this.auditKeys.current.chainKey;
    this.pseudonymKey = this.auditKeys.current.pseudonymKey;
    this.oidcFlowKey = deriveKey(jwtRoot, 'oidcFlow').key;
    this.jwtPrivateKeyPem = secrets.jwtPrivateKeyPem;
    this.#held.push(
      jwtRoot,
      ...previousRoots,
      this.blindIndexKey,
      this.tokenHmacKey,
      this.recoveryCodeKeys.current.key,
      ...this.recoveryCodeKeys.previous.map((entry) => entry.key),
      ...this.auditKeys.all.flatMap((set) => [set.chainKey, set.pseudonymKey]),
      this.oidcFlowKey,
    );
  }

  zeroize(): void {
    this.payloadRing.zeroize();
    this.columnRing.zeroize();
    for (const key of this.#held) key.fill(0);
  }
}

/** Redis key where API processes record the kid of the token key they hash with (for `keys rotate --check`). */
export const TOKEN_KID_REDIS_KEY = 'botserver:keys:token-kid';
