import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { CryptoError } from '../../shared/errors.js';
import {
  KeyRing,
  blindIndex,
  decrypt,
  decryptJson,
  encrypt,
  encryptJson,
  hmacHex,
  hmacSha256,
  keyId,
  normaliseEmail,
  openString,
  parseHexKey,
  parsePreviousKeys,
  randomHex,
  randomToken,
  randomUuid,
  sealString,
  timingSafeEqualHex,
  type Envelope,
} from '../../shared/crypto/index.js';
import { IvPool } from '../../shared/crypto/ivPool.js';

type CryptoCode = 'decrypt_failed' | 'unknown_key' | 'malformed_envelope' | 'invalid_key';

function catchError(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return expect.fail('expected the call to throw, but it returned');
}

function expectCryptoError(action: () => unknown, code: CryptoCode): CryptoError {
  const error = catchError(action);
  if (!(error instanceof CryptoError)) return expect.fail(`expected CryptoError, got ${String(error)}`);
  expect(error.code).to.equal(code);
  return error;
}

const key = (): Buffer => randomBytes(32);
const ringOf = (current: Buffer, previous: Array<{ kid: string; key: Buffer }> = []): KeyRing =>
  new KeyRing({ current, previous });

function flipBit(base64url: string, bit: number): string {
  const bytes = Buffer.from(base64url, 'base64url');
  bytes[bit >> 3] = (bytes[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return bytes.toString('base64url');
}

const bytesArb = fc.uint8Array({ maxLength: 512 }).map((array) => Buffer.from(array));
const nonEmptyBytesArb = fc.uint8Array({ minLength: 1, maxLength: 512 }).map((array) => Buffer.from(array));
const aadArb = fc.string({ maxLength: 40 });

describe('crypto: envelope round trip', () => {
  const ring = ringOf(key());

  it('decrypts what it encrypted, for arbitrary bytes and AAD', () => {
    fc.assert(
      fc.property(bytesArb, aadArb, (plaintext, aad) => {
        const envelope = encrypt(ring, plaintext, aad);
        expect(envelope.v).to.equal(1);
        expect(envelope.kid).to.equal(ring.currentKid);
        expect(Buffer.from(envelope.iv, 'base64url')).to.have.length(12);
        expect(Buffer.from(envelope.tag, 'base64url')).to.have.length(16);
        expect(decrypt(ring, envelope, aad).equals(plaintext)).to.equal(true);
      }),
    );
  });

  it('round-trips arbitrary Unicode strings, also through the compact string form', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), aadArb, (text, aad) => {
        expect(decrypt(ring, encrypt(ring, text, aad), aad).toString('utf8')).to.equal(text);
        const sealed = sealString(ring, text, aad);
        expect(sealed).to.match(/^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]*$/);
        expect(openString(ring, sealed, aad)).to.equal(text);
      }),
    );
  });

  it('round-trips JSON values and survives JSON storage of the envelope', () => {
    fc.assert(
      fc.property(fc.jsonValue(), aadArb, (value, aad) => {
        const stored: unknown = JSON.parse(JSON.stringify(encryptJson(ring, value, aad)));
        expect(decryptJson(ring, stored, aad)).to.deep.equal(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it('uses a fresh IV for every encryption of the same plaintext', () => {
    const a = encrypt(ring, 'same', 'aad');
    const b = encrypt(ring, 'same', 'aad');
    expect(a.iv).to.not.equal(b.iv);
    expect(a.ct).to.not.equal(b.ct);
  });

  it('refuses to encrypt a value JSON cannot represent', () => {
    expectCryptoError(() => encryptJson(ring, undefined, 'aad'), 'malformed_envelope');
  });
});

describe('crypto: envelope tampering never yields data', () => {
  const keyA = key();
  const keyB = key();
  const ring = ringOf(keyA, [{ kid: 'older', key: keyB }]);
  const sealedArb = fc.tuple(nonEmptyBytesArb, aadArb).map(([plaintext, aad]) => ({
    envelope: encrypt(ring, plaintext, aad),
    aad,
  }));

  it('detects any flipped bit in iv', () => {
    fc.assert(
      fc.property(sealedArb, fc.nat({ max: 95 }), ({ envelope, aad }, bit) => {
        expectCryptoError(() => decrypt(ring, { ...envelope, iv: flipBit(envelope.iv, bit) }, aad), 'decrypt_failed');
      }),
    );
  });

  it('detects any flipped bit in tag', () => {
    fc.assert(
      fc.property(sealedArb, fc.nat({ max: 127 }), ({ envelope, aad }, bit) => {
        expectCryptoError(() => decrypt(ring, { ...envelope, tag: flipBit(envelope.tag, bit) }, aad), 'decrypt_failed');
      }),
    );
  });

  it('detects any flipped bit in ct', () => {
    fc.assert(
      fc.property(sealedArb, fc.nat(), ({ envelope, aad }, seed) => {
        const bit = seed % (Buffer.from(envelope.ct, 'base64url').length * 8);
        expectCryptoError(() => decrypt(ring, { ...envelope, ct: flipBit(envelope.ct, bit) }, aad), 'decrypt_failed');
      }),
    );
  });

  it('detects truncated ct', () => {
    fc.assert(
      fc.property(sealedArb, fc.nat(), ({ envelope, aad }, seed) => {
        const ct = Buffer.from(envelope.ct, 'base64url');
        const truncated = ct.subarray(0, seed % ct.length).toString('base64url');
        expectCryptoError(() => decrypt(ring, { ...envelope, ct: truncated }, aad), 'decrypt_failed');
      }),
    );
  });

  it('detects a changed kid, including a label that names the same key', () => {
    const sameKeyRing = ringOf(key(), [{ kid: 'label-for-a', key: keyA }]);
    fc.assert(
      fc.property(sealedArb, ({ envelope, aad }) => {
        expectCryptoError(() => decrypt(ring, { ...envelope, kid: 'older' }, aad), 'decrypt_failed');
        expectCryptoError(() => decrypt(ring, { ...envelope, kid: keyId(keyB) }, aad), 'decrypt_failed');
        // Same key bytes, other kid: only the kid bound into the AAD catches this.
        expect(decrypt(sameKeyRing, envelope, aad)).to.have.length.greaterThan(0);
        expectCryptoError(() => decrypt(sameKeyRing, { ...envelope, kid: 'label-for-a' }, aad), 'decrypt_failed');
      }),
    );
  });

  it('rejects any other version', () => {
    fc.assert(
      fc.property(sealedArb, fc.anything().filter((v) => v !== 1), ({ envelope, aad }, v) => {
        expectCryptoError(() => decrypt(ring, { ...envelope, v }, aad), 'malformed_envelope');
        const sealed = `v2${sealString(ring, 'x', aad).slice(2)}`;
        expectCryptoError(() => openString(ring, sealed, aad), 'malformed_envelope');
      }),
    );
  });

  it('detects wrong AAD', () => {
    fc.assert(
      fc.property(sealedArb, aadArb, ({ envelope, aad }, otherAad) => {
        fc.pre(otherAad !== aad);
        expectCryptoError(() => decrypt(ring, envelope, otherAad), 'decrypt_failed');
      }),
    );
  });

  it('refuses a ring without the key, and detects a wrong key under the same kid', () => {
    fc.assert(
      fc.property(sealedArb, ({ envelope, aad }) => {
        expectCryptoError(() => decrypt(ringOf(key()), envelope, aad), 'unknown_key');
        const impostor = ringOf(key(), [{ kid: envelope.kid, key: key() }]);
        expectCryptoError(() => decrypt(impostor, envelope, aad), 'decrypt_failed');
      }),
    );
  });

  it('detects tampering in the compact string form', () => {
    fc.assert(
      fc.property(nonEmptyBytesArb, fc.nat(), (plaintext, seed) => {
        const sealed = sealString(ring, plaintext.toString('latin1'), 'col');
        const parts = sealed.split('.');
        const field = 2 + (seed % 3);
        const value = parts[field] ?? '';
        parts[field] = flipBit(value, seed % (Buffer.from(value, 'base64url').length * 8));
        expectCryptoError(() => openString(ring, parts.join('.'), 'col'), 'decrypt_failed');
      }),
    );
  });
});

describe('crypto: malformed envelopes', () => {
  const ring = ringOf(key());
  const valid = encrypt(ring, 'hello', 'aad');
  const malformed = (value: unknown): void => {
    expectCryptoError(() => decrypt(ring, value, 'aad'), 'malformed_envelope');
  };

  it('rejects arbitrary values', () => {
    fc.assert(fc.property(fc.anything(), malformed));
  });

  it('rejects null, arrays, strings, numbers and an empty object', () => {
    for (const value of [null, undefined, [], [valid], 'v1', JSON.stringify(valid), 1, true, {}]) malformed(value);
  });

  it('rejects a missing field, an extra field, or a field of the wrong type', () => {
    const fields = ['v', 'kid', 'iv', 'tag', 'ct'] as const;
    fc.assert(
      fc.property(
        fc.constantFrom(...fields),
        fc.anything().filter((v) => typeof v !== 'string'),
        (field, wrong) => {
          const missing: Record<string, unknown> = { ...valid };
          delete missing[field];
          malformed(missing);
          malformed({ ...valid, extra: 1 });
          if (field !== 'v') malformed({ ...valid, [field]: wrong });
        },
      ),
    );
  });

  it('rejects non-base64url text and non-canonical encodings', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('iv', 'tag', 'ct'),
        fc.constantFrom('+', '/', '=', '.', ' ', '\n', '!', 'é'),
        fc.nat(),
        (field, bad, position) => {
          const value = valid[field];
          const at = position % (value.length + 1);
          malformed({ ...valid, [field]: value.slice(0, at) + bad + value.slice(at) });
        },
      ),
    );
    // 22 base64url characters carry 132 bits for a 16-byte tag: the 4 spare bits must be zero.
    const lastIndex = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.indexOf(valid.tag.slice(-1));
    const sibling = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'[lastIndex ^ 1] ?? 'A';
    malformed({ ...valid, tag: valid.tag.slice(0, -1) + sibling });
    malformed({ ...valid, iv: `${valid.iv}==` });
  });

  it('rejects iv and tag of the wrong length', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (raw) => {
        const encoded = Buffer.from(raw).toString('base64url');
        if (raw.length !== 12) malformed({ ...valid, iv: encoded });
        if (raw.length !== 16) malformed({ ...valid, tag: encoded });
      }),
    );
  });

  it('rejects kids that could not have been issued', () => {
    for (const kid of ['', 'a.b', 'a|b', 'x'.repeat(65), 'é']) malformed({ ...valid, kid });
  });

  it('rejects arbitrary and mis-shaped compact strings', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        expectCryptoError(() => openString(ring, text, 'aad'), 'malformed_envelope');
      }),
    );
    const sealed = sealString(ring, 'hello', 'aad');
    for (const text of [`${sealed}.`, sealed.split('.').slice(1).join('.'), sealed.replace('v1', 'V1')]) {
      expectCryptoError(() => openString(ring, text, 'aad'), 'malformed_envelope');
    }
  });
});

describe('crypto: key ring and rotation', () => {
  it('decrypts old data with a previous key and encrypts new data under the current key', () => {
    const keyA = key();
    const keyB = key();
    const old: Envelope = encrypt(ringOf(keyA), 'old secret', 'aad');
    const rotated = ringOf(keyB, [{ kid: 'a', key: keyA }]);
    expect(decrypt(rotated, old, 'aad').toString()).to.equal('old secret');
    const fresh = encrypt(rotated, 'new secret', 'aad');
    expect(fresh.kid).to.equal(keyId(keyB)).and.not.equal(old.kid);
    expect(rotated.keyFor('a').equals(keyA)).to.equal(true);
    expect(rotated.keyFor(keyId(keyA)).equals(keyA)).to.equal(true);
    expectCryptoError(() => decrypt(ringOf(keyB), old, 'aad'), 'unknown_key');
    expectCryptoError(() => rotated.keyFor('nope'), 'unknown_key');
  });

  it('keyId is a deterministic 16-hex-character fingerprint', () => {
    const k = key();
    expect(keyId(k)).to.match(/^[0-9a-f]{16}$/).and.equal(keyId(Buffer.from(k)));
    expect(keyId(k)).to.not.equal(keyId(key()));
  });

  it('rejects keys that are not 32 bytes and one kid naming two keys', () => {
    expectCryptoError(() => ringOf(randomBytes(31)), 'invalid_key');
    expectCryptoError(() => ringOf(key(), [{ kid: 'x', key: randomBytes(33) }]), 'invalid_key');
    expectCryptoError(() => ringOf(key(), [{ kid: 'x', key: key() }, { kid: 'x', key: key() }]), 'invalid_key');
    expectCryptoError(() => ringOf(key(), [{ kid: 'bad kid', key: key() }]), 'invalid_key');
  });

  it('parsePreviousKeys accepts kid:hex lists', () => {
    const a = key();
    const b = key();
    expect(parsePreviousKeys('')).to.deep.equal([]);
    const parsed = parsePreviousKeys(`k1:${a.toString('hex')}, k-2:${b.toString('hex').toUpperCase()}`);
    expect(parsed.map((entry) => entry.kid)).to.deep.equal(['k1', 'k-2']);
    expect(parsed[0]?.key.equals(a)).to.equal(true);
    expect(parsed[1]?.key.equals(b)).to.equal(true);
  });

  it('parsePreviousKeys rejects bad entries by position, without echoing them', () => {
    const hex = key().toString('hex');
    const bad = [`k1:${hex.slice(1)}`, `k1${hex}`, `:${hex}`, `k 1:${hex}`, `k1:${hex}0`, `k1:${hex.slice(1)}g`];
    for (const entry of bad) {
      const error = expectCryptoError(() => parsePreviousKeys(`ok:${hex},${entry}`), 'invalid_key');
      expect(error.message).to.contain('BOTSERVER_PREVIOUS_KEYS').and.contain('entry 2');
      expect(error.message).to.not.contain(hex.slice(1, 40));
    }
    expectCryptoError(() => parsePreviousKeys(`ok:${hex},`), 'invalid_key');
  });

  it('parseHexKey accepts 64 hex characters and rejects anything else without echoing it', () => {
    const hex = key().toString('hex');
    expect(parseHexKey(hex, 'DATABASE_ENCRYPTION_KEY').toString('hex')).to.equal(hex);
    expect(parseHexKey(hex.toUpperCase(), 'X')).to.have.length(32);
    for (const value of [hex.slice(1), `${hex}a`, `${hex.slice(1)}g`, ` ${hex.slice(1)}`, '', `${hex.slice(0, 62)}zz`]) {
      const error = expectCryptoError(() => parseHexKey(value, 'DATABASE_ENCRYPTION_KEY'), 'invalid_key');
      expect(error.message).to.contain('DATABASE_ENCRYPTION_KEY');
      if (value.length > 0) expect(error.message).to.not.contain(value.trim().slice(0, 16));
    }
    fc.assert(
      fc.property(fc.string({ minLength: 16, maxLength: 100 }), (value) => {
        fc.pre(!/^[0-9a-fA-F]{64}$/.test(value));
        const error = expectCryptoError(() => parseHexKey(value, 'K'), 'invalid_key');
        expect(error.message).to.not.contain(value);
      }),
    );
  });

  it('zeroize wipes every held key and makes later use throw', () => {
    const current = key();
    const previous = key();
    const ring = ringOf(current, [{ kid: 'old', key: previous }]);
    const envelope = encrypt(ring, 'x', 'aad');
    ring.zeroize();
    expect(current.equals(Buffer.alloc(32))).to.equal(true);
    expect(previous.equals(Buffer.alloc(32))).to.equal(true);
    expectCryptoError(() => encrypt(ring, 'x', 'aad'), 'invalid_key');
    expectCryptoError(() => decrypt(ring, envelope, 'aad'), 'invalid_key');
    expectCryptoError(() => ring.keyFor('old'), 'invalid_key');
  });
});

describe('crypto: HMAC and blind index', () => {
  const k = key();

  it('hmacSha256 and hmacHex agree with each other', () => {
    expect(hmacSha256(k, 'data')).to.have.length(32);
    expect(hmacHex(k, 'data')).to.equal(hmacSha256(k, Buffer.from('data')).toString('hex'));
  });

  it('timingSafeEqualHex compares hex safely and never throws', () => {
    const mac = hmacHex(k, 'x');
    expect(timingSafeEqualHex(mac, mac)).to.equal(true);
    expect(timingSafeEqualHex(mac, mac.toUpperCase())).to.equal(true);
    expect(timingSafeEqualHex(mac, hmacHex(k, 'y'))).to.equal(false);
    expect(timingSafeEqualHex(mac, mac.slice(2))).to.equal(false);
    expect(timingSafeEqualHex('zz', 'yy')).to.equal(false);
    fc.assert(
      fc.property(fc.string(), fc.string(), (a, b) => {
        expect(timingSafeEqualHex(a, b)).to.be.a('boolean');
      }),
    );
  });

  it('blind index is deterministic, purpose-separated and not the plain HMAC', () => {
    fc.assert(
      fc.property(fc.string(), fc.string({ minLength: 1 }), fc.string({ minLength: 1 }), (value, p1, p2) => {
        fc.pre(p1 !== p2 && !p1.includes('\0') && !p2.includes('\0'));
        const index = blindIndex(k, p1, value);
        expect(index).to.match(/^[0-9a-f]{64}$/).and.equal(blindIndex(Buffer.from(k), p1, value));
        expect(index).to.not.equal(blindIndex(k, p2, value));
        expect(index).to.not.equal(hmacHex(k, `${p1}\0${value}`));
        expect(index).to.not.equal(blindIndex(key(), p1, value));
      }),
    );
    expect(blindIndex(k, 'ab', 'c')).to.not.equal(blindIndex(k, 'a', 'bc'));
    expectCryptoError(() => blindIndex(k, '', 'v'), 'invalid_key');
    expectCryptoError(() => blindIndex(k, 'a\0b', 'v'), 'invalid_key');
  });

  it('normaliseEmail trims, lower-cases and NFKC-normalises', () => {
    expect(normaliseEmail('A@B.c ')).to.equal(normaliseEmail('a@b.C'));
    expect(blindIndex(k, 'email', normaliseEmail(' Alice@Example.COM'))).to.equal(
      blindIndex(k, 'email', normaliseEmail('alice@example.com')),
    );
    expect(normaliseEmail('ｆｕｌｌ@ｗｉｄｔｈ.com')).to.equal('full@width.com');
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (email) => {
        expect(normaliseEmail(normaliseEmail(email))).to.equal(normaliseEmail(email));
      }),
    );
  });
});

describe('crypto: random values', () => {
  it('randomToken, randomHex and randomUuid have the right shape and do not repeat', () => {
    expect(Buffer.from(randomToken(), 'base64url')).to.have.length(32);
    expect(randomToken(16)).to.match(/^[A-Za-z0-9_-]{22}$/);
    expect(randomHex(8)).to.match(/^[0-9a-f]{16}$/);
    expect(randomUuid()).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(new Set(Array.from({ length: 100 }, () => randomToken())).size).to.equal(100);
    expect(() => randomToken(0)).to.throw(RangeError);
    expect(() => randomHex(1.5)).to.throw(RangeError);
  });
});

describe('crypto: the IV pool', () => {
  it('hands out IVs of its size, never the same bytes twice, and never changes one already handed out (across refills)', () => {
    const pool = new IvPool(12);
    const handed = Array.from({ length: 2000 }, () => pool.next());
    const copies = handed.map((iv) => Buffer.from(iv));
    expect(handed.every((iv) => iv.length === 12)).to.equal(true);
    expect(new Set(handed.map((iv) => iv.toString('hex'))).size).to.equal(handed.length);
    for (let index = 0; index < 2000; index += 1) pool.next();
    expect(handed.every((iv, index) => iv.equals(copies[index] as Buffer))).to.equal(true);
  });

  it('gives every encryption its own IV', () => {
    const ring = ringOf(key());
    const ivs = new Set(Array.from({ length: 1500 }, () => encrypt(ring, 'same text', 'same aad').iv));
    expect(ivs.size).to.equal(1500);
  });
});
