import { randomBytes } from 'node:crypto';
import { Readable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'chai';
import fc from 'fast-check';
import { CryptoError } from '../../shared/errors.js';
import { KeyRing, createDecryptStream, createEncryptStream } from '../../shared/crypto/index.js';

type CryptoCode = 'decrypt_failed' | 'unknown_key' | 'malformed_envelope' | 'invalid_key';
type Outcome = { output: Buffer; error: unknown };

const TAG = 16;
const ring = new KeyRing({ current: randomBytes(32) });

/** Feeds `input` in pieces cut at `cuts` (so buffering across write boundaries is exercised) and collects output. */
async function run(transform: Transform, input: Buffer, cuts: number[] = []): Promise<Outcome> {
  const points = [...new Set(cuts.map((cut) => cut % (input.length + 1)))].sort((a, b) => a - b);
  const pieces = [0, ...points, input.length].slice(1).map((end, i, ends) => input.subarray(ends[i - 1] ?? 0, end));
  const collected: Buffer[] = [];
  let error: unknown;
  try {
    await pipeline(Readable.from(pieces.filter((piece) => piece.length > 0)), transform, async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of source) collected.push(chunk);
    });
  } catch (caught) {
    error = caught;
  }
  return { output: Buffer.concat(collected), error };
}

async function encryptAll(plaintext: Buffer, chunkSize: number, aad = 'file:1', cuts: number[] = []): Promise<Buffer> {
  const { output, error } = await run(createEncryptStream(ring, aad, { chunkSize }), plaintext, cuts);
  expect(error).to.equal(undefined);
  return output;
}

async function decryptAll(ciphertext: Buffer, aad = 'file:1', cuts: number[] = [], keys = ring): Promise<Outcome> {
  return run(createDecryptStream(keys, aad), ciphertext, cuts);
}

function expectRejected(outcome: Outcome, plaintext: Buffer, code?: CryptoCode): void {
  if (!(outcome.error instanceof CryptoError)) return expect.fail(`expected CryptoError, got ${String(outcome.error)}`);
  if (code !== undefined) expect(outcome.error.code).to.equal(code);
  // Whatever was released before the error must be authentic plaintext, never garbage.
  expect(plaintext.subarray(0, outcome.output.length).equals(outcome.output)).to.equal(true);
}

/** Splits a ciphertext into header and records, using the header layout (kid length at byte 4). */
function split(ciphertext: Buffer, chunkSize: number): { header: Buffer; records: Buffer[] } {
  const headerLength = 4 + 1 + (ciphertext[4] ?? 0) + 32 + 8 + 4;
  const records: Buffer[] = [];
  for (let at = headerLength; at < ciphertext.length; at += chunkSize + TAG) {
    records.push(ciphertext.subarray(at, at + chunkSize + TAG));
  }
  return { header: ciphertext.subarray(0, headerLength), records };
}

const join = (header: Buffer, records: Buffer[]): Buffer => Buffer.concat([header, ...records]);

describe('crypto stream: round trip', () => {
  const cases: Array<[string, number, number]> = [
    ['0 bytes', 0, 16],
    ['1 byte', 1, 16],
    ['exactly one chunk', 16, 16],
    ['several chunks and a partial one', 16 * 5 + 7, 16],
    ['several exact chunks', 16 * 4, 16],
  ];
  for (const [name, length, chunkSize] of cases) {
    it(`round-trips ${name}`, async () => {
      const plaintext = randomBytes(length);
      const ciphertext = await encryptAll(plaintext, chunkSize);
      const records = Math.max(1, Math.ceil(length / chunkSize));
      expect(split(ciphertext, chunkSize).records).to.have.length(records);
      const { output, error } = await decryptAll(ciphertext);
      expect(error).to.equal(undefined);
      expect(output.equals(plaintext)).to.equal(true);
    });
  }

  it('round-trips with the default 64 KiB chunks', async () => {
    const plaintext = randomBytes(64 * 1024 * 3 + 5);
    const ciphertext = await encryptAll(plaintext, 64 * 1024);
    const { output, error } = await decryptAll(ciphertext);
    expect(error).to.equal(undefined);
    expect(output.equals(plaintext)).to.equal(true);
    const defaultSized = await run(createEncryptStream(ring, 'file:1'), plaintext);
    expect(defaultSized.output).to.have.length(ciphertext.length);
  });

  it('round-trips arbitrary data cut into arbitrary writes on both sides', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uint8Array({ maxLength: 300 }),
        fc.integer({ min: 1, max: 64 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        async (bytes, chunkSize, plainCuts, cipherCuts) => {
          const plaintext = Buffer.from(bytes);
          const ciphertext = await encryptAll(plaintext, chunkSize, 'aad', plainCuts);
          const { output, error } = await decryptAll(ciphertext, 'aad', cipherCuts);
          expect(error).to.equal(undefined);
          expect(output.equals(plaintext)).to.equal(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('rejects an invalid chunk size, and a zeroized ring, when the stream is created', () => {
    expect(() => createEncryptStream(ring, 'a', { chunkSize: 0 })).to.throw(RangeError);
    expect(() => createEncryptStream(ring, 'a', { chunkSize: 1.5 })).to.throw(RangeError);
    const doomed = new KeyRing({ current: randomBytes(32) });
    doomed.zeroize();
    expect(() => createEncryptStream(doomed, 'a')).to.throw(CryptoError);
  });
});

describe('crypto stream: tampering is detected', () => {
  const chunkSize = 8;
  const sample = fc.record({
    plaintext: fc.uint8Array({ minLength: 0, maxLength: 60 }).map((array) => Buffer.from(array)),
    cuts: fc.array(fc.nat(), { maxLength: 4 }),
  });

  it('detects any flipped byte; in the records always as decrypt_failed', async () => {
    await fc.assert(
      fc.asyncProperty(sample, fc.nat(), fc.integer({ min: 1, max: 255 }), async ({ plaintext, cuts }, seed, mask) => {
        const ciphertext = Buffer.from(await encryptAll(plaintext, chunkSize));
        const at = seed % ciphertext.length;
        ciphertext[at] = (ciphertext[at] ?? 0) ^ mask;
        const inRecords = at >= split(ciphertext, chunkSize).header.length;
        expectRejected(await decryptAll(ciphertext, 'file:1', cuts), plaintext, inRecords ? 'decrypt_failed' : undefined);
      }),
      { numRuns: 150 },
    );
  });

  it('detects truncation at any point, including a truncated last chunk', async () => {
    await fc.assert(
      fc.asyncProperty(sample, fc.nat(), async ({ plaintext, cuts }, seed) => {
        const ciphertext = await encryptAll(plaintext, chunkSize);
        const kept = ciphertext.subarray(0, seed % ciphertext.length);
        expectRejected(await decryptAll(kept, 'file:1', cuts), plaintext, 'decrypt_failed');
      }),
      { numRuns: 150 },
    );
    const plaintext = randomBytes(chunkSize * 2 + 5);
    const ciphertext = await encryptAll(plaintext, chunkSize);
    expectRejected(await decryptAll(ciphertext.subarray(0, ciphertext.length - 1)), plaintext, 'decrypt_failed');
  });

  it('detects a dropped final chunk, also when the file is an exact multiple of the chunk size', async () => {
    for (const length of [chunkSize * 3, chunkSize * 3 + 2]) {
      const plaintext = randomBytes(length);
      const { header, records } = split(await encryptAll(plaintext, chunkSize), chunkSize);
      expectRejected(await decryptAll(join(header, records.slice(0, -1))), plaintext, 'decrypt_failed');
    }
  });

  it('detects swapped, duplicated and extra chunks', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 6 }), fc.nat(), fc.nat(), async (chunks, i, j) => {
        const plaintext = randomBytes(chunkSize * chunks - 1);
        const { header, records } = split(await encryptAll(plaintext, chunkSize), chunkSize);
        const [a, b] = [i % records.length, j % records.length];
        fc.pre(a !== b);
        const swapped = [...records];
        [swapped[a], swapped[b]] = [records[b] ?? Buffer.alloc(0), records[a] ?? Buffer.alloc(0)];
        expectRejected(await decryptAll(join(header, swapped)), plaintext, 'decrypt_failed');
        const duplicated = [...records.slice(0, a + 1), records[a] ?? Buffer.alloc(0), ...records.slice(a + 1)];
        expectRejected(await decryptAll(join(header, duplicated)), plaintext, 'decrypt_failed');
      }),
      { numRuns: 40 },
    );
    const plaintext = randomBytes(chunkSize * 2);
    const ciphertext = await encryptAll(plaintext, chunkSize);
    expectRejected(await decryptAll(Buffer.concat([ciphertext, Buffer.alloc(1)])), plaintext, 'decrypt_failed');
  });

  it('detects chunks moved from another file encrypted with the same key', async () => {
    const plaintext = randomBytes(chunkSize * 3);
    const first = split(await encryptAll(plaintext, chunkSize), chunkSize);
    const second = split(await encryptAll(plaintext, chunkSize), chunkSize);
    expectRejected(await decryptAll(join(first.header, second.records)), plaintext, 'decrypt_failed');
  });

  it('detects wrong AAD and refuses a ring without the key', async () => {
    await fc.assert(
      fc.asyncProperty(sample, fc.string(), async ({ plaintext }, aad) => {
        fc.pre(aad !== 'file:1');
        const ciphertext = await encryptAll(plaintext, chunkSize);
        expectRejected(await decryptAll(ciphertext, aad), plaintext, 'decrypt_failed');
      }),
      { numRuns: 40 },
    );
    const plaintext = randomBytes(20);
    const stranger = new KeyRing({ current: randomBytes(32) });
    expectRejected(await decryptAll(await encryptAll(plaintext, chunkSize), 'file:1', [], stranger), plaintext, 'unknown_key');
  });

  it('rejects input that is not an encrypted file', async () => {
    expectRejected(await decryptAll(Buffer.alloc(0)), Buffer.alloc(0), 'decrypt_failed');
    expectRejected(await decryptAll(Buffer.from('not an encrypted file at all')), Buffer.alloc(0), 'malformed_envelope');
  });
});
