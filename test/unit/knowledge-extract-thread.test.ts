import { expect } from 'chai';
import { extractInThread } from '../../shared/knowledge/extract-thread.js';
import { corruptPdf, pricingPdf } from '../fixtures/knowledge/make-pdf.js';

describe('knowledge: extraction in a thread with a capped heap', function () {
  this.timeout(30_000);

  it('returns the same sections as a direct extraction, table row included', async () => {
    const sections = await extractInThread(await pricingPdf(), 'application/pdf');
    expect(sections.map((section) => section.text).join('\n')).to.match(/Team \| 49 EUR \| 10/);
    expect(sections[0]?.position).to.equal('page 1');
  });

  it('passes the reader\'s typed errors through', async () => {
    const error = await extractInThread(corruptPdf(), 'application/pdf').then(() => undefined, (failure: unknown) => failure as { code?: string });
    expect(error?.code).to.equal('unreadable_document');
    const unsupported = await extractInThread(Buffer.from('x'), 'image/png').then(() => undefined, (failure: unknown) => failure as { code?: string });
    expect(unsupported?.code).to.equal('unsupported_document');
  });

  it('refuses a document that needs more heap than allowed as document_too_large, and the process goes on', async () => {
    const error = await extractInThread(await pricingPdf(), 'application/pdf', 1).then(() => undefined, (failure: unknown) => failure as { code?: string });
    expect(error?.code).to.equal('document_too_large');
    expect(await extractInThread(Buffer.from('# Still here\n\nfine'), 'text/markdown')).to.have.length(1);
  });
});
