import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import fc from 'fast-check';
import { createEncryptStream, KeyRing } from '../../shared/crypto/index.js';
import { OpenedContent, objectSize, recordCount, recordSpan, type ObjectSource } from '../../shared/files/index.js';
import { contentAad } from '../../shared/files/aad.js';
import { wrapDataKey, newDataKey } from '../../shared/files/dataKey.js';
import { Readable } from 'node:stream';

async function encrypt(ring: KeyRing, fileId: string, plaintext: Buffer, chunkSize: number): Promise<Buffer> {
  const stream = createEncryptStream(ring, contentAad(fileId), { chunkSize });
  const parts: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => parts.push(chunk));
  const ended = new Promise((resolve) => stream.on('end', resolve));
  stream.end(plaintext);
  await ended;
  return Buffer.concat(parts);
}

function memorySource(object: Buffer, reads: Array<{ start: number; end: number }> = []): ObjectSource {
  return {
    read: async (range) => {
      const start = range?.start ?? 0;
      const end = Math.min(range?.end ?? object.length - 1, object.length - 1);
      reads.push({ start, end });
      return Promise.resolve(Readable.from([object.subarray(start, end + 1)]));
    },
    size: async () => Promise.resolve(object.length),
  };
}

async function collect(pieces: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const piece of pieces) parts.push(Buffer.from(piece));
  return Buffer.concat(parts);
}

describe('files: record layout and ranged decryption', () => {
  it('property: the records of a span cover the range, and nothing more', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 1, max: 100_000 }), fc.nat(), fc.nat(), (chunkSize, plainSize, a, b) => {
        const start = a % plainSize;
        const end = start + (b % (plainSize - start));
        const layout = { headerBytes: 65, chunkSize, plainSize };
        const span = recordSpan(layout, start, end);
        expect(span.first * chunkSize).to.be.at.most(start);
        expect((span.last + 1) * chunkSize).to.be.greaterThan(end);
        expect(span.last).to.be.below(recordCount(layout));
        expect(span.objectEnd).to.be.below(objectSize(layout));
        expect(span.objectStart).to.equal(65 + span.first * (chunkSize + 16));
      }),
    );
  });

  it('refuses ranges outside the file', () => {
    const layout = { headerBytes: 65, chunkSize: 10, plainSize: 30 };
    expect(() => recordSpan(layout, -1, 3)).to.throw(RangeError);
    expect(() => recordSpan(layout, 5, 30)).to.throw(RangeError);
    expect(() => recordSpan(layout, 6, 5)).to.throw(RangeError);
  });

  it('property: any range decrypts to the same bytes as the whole file, reading only its records', async () => {
    const master = new KeyRing({ current: randomBytes(32) });
    const fileId = '5b0b3a36-7f7c-4b1e-9a53-3b8b0c1d2e3f';
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 64 }), fc.uint8Array({ minLength: 0, maxLength: 600 }), fc.nat(), fc.nat(), async (chunkSize, bytes, a, b) => {
        const plaintext = Buffer.from(bytes);
        const dataKey = newDataKey();
        const wrapped = wrapDataKey(master, fileId, dataKey);
        const object = await encrypt(new KeyRing({ current: dataKey }), fileId, plaintext, chunkSize);
        const reads: Array<{ start: number; end: number }> = [];
        const content = await OpenedContent.open(master, { id: fileId, size: plaintext.length, wrapped_key: wrapped, chunk_size: chunkSize }, memorySource(object, reads));
        try {
          if (plaintext.length === 0) {
            await content.verify(0, 0);
            return;
          }
          const start = a % plaintext.length;
          const end = start + (b % (plaintext.length - start));
          expect((await collect(content.range(start, end))).equals(plaintext.subarray(start, end + 1))).to.equal(true);
          const span = recordSpan(content.layout, start, end);
          expect(reads.at(-1)).to.deep.equal({ start: span.objectStart, end: span.objectEnd });
        } finally {
          content.close();
        }
      }),
      { numRuns: 200 },
    );
  });

  it('refuses a file under another id, and a wrapped key of another file', async () => {
    const master = new KeyRing({ current: randomBytes(32) });
    const [one, two] = ['0f8e8d7c-6b5a-4c3d-8e1f-0a1b2c3d4e5f', '1f8e8d7c-6b5a-4c3d-8e1f-0a1b2c3d4e5f'] as const;
    const dataKey = newDataKey();
    const object = await encrypt(new KeyRing({ current: dataKey }), one, Buffer.from('hello world'), 4);
    const moved = await OpenedContent.open(master, { id: two, size: 11, wrapped_key: wrapDataKey(master, two, dataKey), chunk_size: 4 }, memorySource(object));
    await collect(moved.range(0, 10)).then(
      () => expect.fail('decrypted under another file id'),
      (error: unknown) => expect((error as Error).name).to.equal('FileIntegrityError'),
    );
    await OpenedContent.open(master, { id: one, size: 11, wrapped_key: wrapDataKey(master, two, dataKey), chunk_size: 4 }, memorySource(object)).then(
      () => expect.fail('a key wrapped for another file opened'),
      (error: unknown) => expect((error as Error).name).to.equal('FileIntegrityError'),
    );
  });
});
