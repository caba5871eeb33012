import { expect } from 'chai';
import fc from 'fast-check';
import { PartBuffers } from '../../adapters/storage/partBuffers.js';

describe('storage: part buffers shared by multipart uploads', function () {
  it('never hands out more than `count` buffers, reuses released ones and serves waiters in order', async function () {
    const buffers = new PartBuffers(2, 16);
    const first = await buffers.acquire();
    const second = await buffers.acquire();
    expect(first).to.have.length(16);
    expect(first).not.to.equal(second);
    const order: string[] = [];
    const third = buffers.acquire().then((buffer) => (order.push('third'), buffer));
    const fourth = buffers.acquire().then((buffer) => (order.push('fourth'), buffer));
    await Promise.resolve();
    expect(order).to.deep.equal([]);
    buffers.release(second);
    expect(await third).to.equal(second);
    buffers.release(first);
    expect(await fourth).to.equal(first);
    expect(order).to.deep.equal(['third', 'fourth']);
  });

  it('property: whatever the interleaving, at most `count` distinct buffers exist and none is held twice', async function () {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 4 }), fc.array(fc.nat({ max: 5 }), { minLength: 1, maxLength: 30 }), async (count, delays) => {
        const buffers = new PartBuffers(count, 8);
        const held = new Set<Buffer>();
        const seen = new Set<Buffer>();
        let maxHeld = 0;
        await Promise.all(
          delays.map(async (delay) => {
            const buffer = await buffers.acquire();
            expect(held.has(buffer), 'a buffer handed out twice').to.equal(false);
            held.add(buffer);
            seen.add(buffer);
            maxHeld = Math.max(maxHeld, held.size);
            for (let tick = 0; tick < delay; tick += 1) await Promise.resolve();
            held.delete(buffer);
            buffers.release(buffer);
          }),
        );
        expect(maxHeld).to.be.at.most(count);
        expect(seen.size).to.be.at.most(count);
      }),
    );
  });
});
