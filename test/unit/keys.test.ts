import { hkdfSync } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { auditKid } from '../../shared/audit/index.js';
import { deriveKey, KEY_PURPOSES, Keys, type KeyPurpose } from '../../shared/keys.js';
import { randomHexKey, testConfig } from '../helpers/config.js';

const PURPOSES = Object.keys(KEY_PURPOSES) as KeyPurpose[];

describe('keys: one HKDF-derived key per purpose, each with a key id', () => {
  it('every purpose gets a different key from the same root, none equal to the root, each named <purpose>-<16 hex>', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const root = Buffer.from(bytes);
        const derived = PURPOSES.map((purpose) => deriveKey(root, purpose));
        const hexes = derived.map((entry) => entry.key.toString('hex'));
        expect(new Set(hexes).size).to.equal(PURPOSES.length);
        expect(hexes).to.not.include(root.toString('hex'));
        derived.forEach((entry, index) => expect(entry.kid).to.match(new RegExp(`^${KEY_PURPOSES[PURPOSES[index] ?? 'token'].kidPrefix}-[0-9a-f]{16}$`)));
        expect(deriveKey(root, 'recovery')).to.deep.equal(deriveKey(Buffer.from(bytes), 'recovery'));
      }),
      { numRuns: 50 },
    );
  });

  it('the audit and blind-index keys are the ones used before key ids existed (stored chains and indexes still verify)', () => {
    const root = Buffer.from(randomHexKey(), 'hex');
    const legacy = (info: string): Buffer => Buffer.from(hkdfSync('sha256', root, Buffer.alloc(0), info, 32));
    expect(deriveKey(root, 'auditChain').key.equals(legacy('botserver-audit-chain'))).to.equal(true);
    expect(deriveKey(root, 'auditPseudonym').key.equals(legacy('botserver-audit-pseudonym'))).to.equal(true);
    expect(deriveKey(root, 'blindIndex').key.equals(legacy('botserver-blind-index'))).to.equal(true);
    expect(deriveKey(root, 'auditChain').kid).to.equal(auditKid(legacy('botserver-audit-chain')));
  });

  it('keys derived from previous roots verify (found by kid) but the current key is the new root\'s', () => {
    const oldSecret = randomHexKey();
    const config = testConfig({ BOTSERVER_PREVIOUS_KEYS: `jwt-old:${oldSecret},unrelated:${randomHexKey()}` });
    const keys = new Keys(config.secrets);
    try {
      const oldRoot = Buffer.from(oldSecret, 'hex');
      const oldAudit = deriveKey(oldRoot, 'auditChain');
      const oldRecovery = deriveKey(oldRoot, 'recovery');
      expect(keys.auditKeys.current.kid).to.equal(deriveKey(Buffer.from(config.secrets.jwtSecret, 'hex'), 'auditChain').kid);
      expect(keys.auditKeys.find(oldAudit.kid)?.chainKey.equals(oldAudit.key)).to.equal(true);
      expect(keys.auditKeys.all.map((set) => set.kid)).to.have.length(3);
      expect(keys.recoveryCodeKeys.find(oldRecovery.kid)?.key.equals(oldRecovery.key)).to.equal(true);
      expect(keys.recoveryCodeKeys.current.kid).to.not.equal(oldRecovery.kid);
      expect(keys.tokenHmacKey.equals(Buffer.from(config.secrets.jwtSecret, 'hex'))).to.equal(false);
      expect(keys.previousBlindIndexKeys).to.have.length(2);
    } finally {
      keys.zeroize();
    }
  });

  it('zeroize wipes the roots and every derived key', () => {
    const keys = new Keys(testConfig({ BOTSERVER_PREVIOUS_KEYS: `old:${randomHexKey()}` }).secrets);
    const held = [keys.tokenHmacKey, keys.recoveryCodeKeys.current.key, ...keys.recoveryCodeKeys.previous.map((entry) => entry.key), keys.auditChainKey, keys.pseudonymKey, keys.oidcFlowKey, keys.blindIndexKey, ...keys.previousBlindIndexKeys, ...keys.legacyRecoveryRoots];
    keys.zeroize();
    for (const key of held) expect(key.every((byte) => byte === 0)).to.equal(true);
  });
});
