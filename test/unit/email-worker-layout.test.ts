import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { planSteps } from '../../workers/email/watcher.js';
import { REPO_ROOT } from '../helpers/process.js';

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

describe('e-mail worker: batches and layout', () => {
  it('property: the batches keep every mail once, in UID order, within the count and byte limits; a too-large mail stands alone', () => {
    const entries = fc.uniqueArray(fc.integer({ min: 1, max: 10_000 }), { maxLength: 300 }).chain((uids) =>
      fc.tuple(fc.constant([...uids].sort((a, b) => a - b)), fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: uids.length, maxLength: uids.length })),
    );
    fc.assert(
      fc.property(entries, fc.integer({ min: 1, max: 50 }), fc.integer({ min: 1, max: 20_000 }), fc.integer({ min: 1, max: 6000 }), ([uids, sizes], batchSize, batchBytes, maxMailBytes) => {
        const mails = uids.map((uid, index) => ({ uid, size: sizes[index] ?? 1 }));
        const steps = planSteps(mails, { batchSize, batchBytes, maxMailBytes });
        const flat = steps.flatMap((step) => (step.kind === 'batch' ? step.entries : [step.entry]));
        expect(flat).to.deep.equal(mails);
        for (const step of steps) {
          if (step.kind === 'too_large') {
            expect(step.entry.size).to.be.greaterThan(maxMailBytes);
            continue;
          }
          expect(step.entries.length).to.be.within(1, batchSize);
          expect(step.entries.every((entry) => entry.size <= maxMailBytes)).to.equal(true);
          // A batch goes over the byte limit only when one mail alone does.
          if (step.entries.length > 1) expect(step.entries.reduce((sum, entry) => sum + entry.size, 0)).to.be.at.most(batchBytes);
        }
      }),
    );
  });

  it('no file of workers/ or api/ imports a mail protocol library: they are reached through adapters/mail only', () => {
    const offenders: string[] = [];
    for (const folder of ['workers', 'api', 'shared']) {
      for (const file of sourceFiles(join(REPO_ROOT, folder))) {
        const text = readFileSync(file, 'utf8');
        if (/from ['"](imapflow|nodemailer|mailparser)(\/[^'"]*)?['"]/.test(text)) offenders.push(relative(REPO_ROOT, file));
      }
    }
    expect(offenders).to.deep.equal([]);
  });
});
