import { expect } from 'chai';
import fc from 'fast-check';
import { generateOneTimePassword, hashPassword, verifyPassword } from '../../shared/accounts/index.js';

/** `$argon2id$v=19$<params>$<salt>$<hash>`, salt and hash in unpadded standard base64. */
const PHC = /^\$argon2id\$v=19\$([a-z]=\d+(?:,[a-z]=\d+)*)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

function phcParts(hash: string): { params: Record<string, number>; paramText: string; salt: Buffer; saltText: string; digest: Buffer } {
  const match = PHC.exec(hash);
  if (match?.[1] === undefined || match[2] === undefined || match[3] === undefined) throw new Error(`not an Argon2id v19 PHC string: ${hash}`);
  const params = Object.fromEntries(match[1].split(',').map((pair) => [pair.slice(0, 1), Number(pair.slice(2))]));
  return { params, paramText: match[1], saltText: match[2], salt: Buffer.from(match[2], 'base64'), digest: Buffer.from(match[3], 'base64') };
}

describe('accounts: password hashing (Argon2id)', function () {
  // Each hash costs 19 MiB and two passes: tens of milliseconds, more on a loaded machine.
  this.timeout(30_000);

  it('hashes with Argon2id v19, m=19456, t=2, p=1 (OWASP baseline) and a 32-byte salt', async () => {
    const hash = await hashPassword('correct horse battery staple');
    const { params, salt, saltText, digest } = phcParts(hash);
    expect(params).to.deep.equal({ m: 19456, t: 2, p: 1 });
    expect(saltText).to.have.length(43); // 32 bytes in unpadded base64
    expect(salt).to.have.length(32);
    expect(digest.length).to.be.at.least(32);
  });

  it('writes the parameters in the PHC order m,t,p: $argon2id$v=19$m=19456,t=2,p=1$ (libargon2-based verifiers need it)', async () => {
    const hash = await hashPassword('correct horse battery staple');
    // node-argon2 0.45 serialises them as m,p,t (ranisalt/node-argon2#559); libargon2's decoder accepts m,t,p only.
    expect(hash.slice(0, hash.lastIndexOf('$', hash.lastIndexOf('$') - 1) + 1)).to.equal('$argon2id$v=19$m=19456,t=2,p=1$');
  });

  it('two hashes of the same password differ (fresh salt each time)', async () => {
    const [first, second] = await Promise.all([hashPassword('same password'), hashPassword('same password')]);
    if (first === undefined || second === undefined) throw new Error('no hashes');
    expect(first).not.to.equal(second);
    expect(phcParts(first).salt.equals(phcParts(second).salt)).to.equal(false);
    expect(await verifyPassword(first, 'same password')).to.equal(true);
    expect(await verifyPassword(second, 'same password')).to.equal(true);
  });

  it('verifyPassword is true for the password and false for any other', async () => {
    const hash = await hashPassword('s3cret-Passw0rd');
    expect(await verifyPassword(hash, 's3cret-Passw0rd')).to.equal(true);
    for (const wrong of ['s3cret-passw0rd', 's3cret-Passw0rd ', '', 's3cret-Passw0r']) {
      expect(await verifyPassword(hash, wrong), JSON.stringify(wrong)).to.equal(false);
    }
  });

  it('verifyPassword answers false, without throwing, for a malformed or foreign hash', async () => {
    const good = await hashPassword('password');
    const truncated = good.slice(0, good.lastIndexOf('$'));
    const malformed = [
      '',
      'not a hash',
      '$argon2id$',
      truncated,
      good.replace('$argon2id$', '$argon2xx$'),
      '$argon2id$v=19$m=19456,t=2,p=1$!!!!$????',
      '$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy', // bcrypt
      'plaintext-password',
    ];
    for (const hash of malformed) {
      let result: unknown;
      try {
        result = await verifyPassword(hash, 'password');
      } catch (error: unknown) {
        expect.fail(`verifyPassword threw for ${JSON.stringify(hash)}: ${String(error)}`);
      }
      expect(result, JSON.stringify(hash)).to.equal(false);
    }
  });

  it('generateOneTimePassword gives distinct URL-safe strings of at least 24 characters', () => {
    const passwords = Array.from({ length: 200 }, () => generateOneTimePassword());
    for (const password of passwords) {
      expect(password).to.match(/^[A-Za-z0-9_-]+$/);
      expect(password.length).to.be.at.least(24);
    }
    expect(new Set(passwords).size).to.equal(passwords.length);
  });

  it('property: any string round-trips, and a different string is refused', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 64 }), async (password) => {
        const hash = await hashPassword(password);
        expect(phcParts(hash).params).to.deep.equal({ m: 19456, t: 2, p: 1 });
        expect(await verifyPassword(hash, password)).to.equal(true);
        expect(await verifyPassword(hash, `${password}x`)).to.equal(false);
      }),
      { numRuns: 5 },
    );
  });
});
