import { readFileSync } from 'node:fs';
import { deflateRawSync, crc32 } from 'node:zlib';
import { expect } from 'chai';
import { PDFDocument, StandardFonts, degrees } from 'pdf-lib';
import { AppError } from '../../shared/errors.js';
import { ExtractionError, extractSections, isSupportedType } from '../../shared/knowledge/extract.js';
import type { TextSection } from '../../shared/knowledge/types.js';
import { PRICING_TABLE, corruptPdf, pricingPdf } from '../fixtures/knowledge/make-pdf.js';

const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
const fixture = (name: string): Buffer => readFileSync(new URL(`../fixtures/knowledge/${name}`, import.meta.url));

async function extractionFailure(promise: Promise<unknown>): Promise<ExtractionError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(ExtractionError);
    return error as ExtractionError;
  }
  return expect.fail('expected an ExtractionError');
}

/** A zip archive (deflated entries), enough for a .docx. */
function zip(files: Record<string, string>): Buffer {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content, 'utf8');
    const packed = deflateRawSync(data);
    const nameBytes = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(0, 10);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(packed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0);
    entry.writeUInt16LE(20, 4);
    entry.writeUInt16LE(20, 6);
    entry.writeUInt16LE(0, 8);
    entry.writeUInt16LE(8, 10);
    entry.writeUInt32LE(0, 12);
    entry.writeUInt32LE(crc, 16);
    entry.writeUInt32LE(packed.length, 20);
    entry.writeUInt32LE(data.length, 24);
    entry.writeUInt16LE(nameBytes.length, 28);
    entry.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, packed);
    central.push(entry, nameBytes);
    offset += local.length + nameBytes.length + packed.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(Object.keys(files).length, 8);
  end.writeUInt16LE(Object.keys(files).length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}

const W = 'http://schemas.openxmlformats.org/wordprocessingml/2006/main';
const paragraph = (text: string, style?: string): string =>
  `<w:p>${style === undefined ? '' : `<w:pPr><w:pStyle w:val="${style}"/></w:pPr>`}<w:r><w:t xml:space="preserve">${text}</w:t></w:r></w:p>`;

/** A minimal Word document: content types, package and document relationships, styles with Heading 1 and 2. */
function docx(body: string): Buffer {
  return zip({
    '[Content_Types].xml':
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
      '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>' +
      '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>' +
      '<Override PartName="/word/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/></Types>',
    '_rels/.rels':
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
      '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/></Relationships>',
    'word/_rels/document.xml.rels':
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
      '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/></Relationships>',
    'word/styles.xml':
      `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:styles xmlns:w="${W}">` +
      '<w:style w:type="paragraph" w:styleId="Heading1"><w:name w:val="heading 1"/></w:style>' +
      '<w:style w:type="paragraph" w:styleId="Heading2"><w:name w:val="heading 2"/></w:style></w:styles>',
    'word/document.xml': `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="${W}"><w:body>${body}</w:body></w:document>`,
  });
}

const lines = (section: TextSection | undefined): string[] => (section?.text ?? '').split('\n').filter((line) => line !== '');

describe('knowledge: text extraction', () => {
  describe('PDF', () => {
    it('keeps each table row on one line, cells in reading order joined by " | "', async () => {
      const sections = await extractSections(await pricingPdf(), 'application/pdf');
      expect(sections.map((section) => section.position)).to.deep.equal(['page 1', 'page 2']);
      const page = lines(sections[0]);
      const rows = PRICING_TABLE.map((row) => row.join(' | '));
      expect(rows).to.deep.equal(['Plan | Price per month | Users', 'Starter | 9 EUR | 1', 'Team | 49 EUR | 10', 'Enterprise | 199 EUR | unlimited']);
      const at = rows.map((row) => page.indexOf(row));
      expect(at.every((index) => index >= 0), page.join('\n')).to.equal(true);
      expect(at).to.deep.equal([...at].sort((a, b) => a - b));
      expect(at[3]).to.equal((at[0] ?? 0) + 3);
    });

    it('reads the page top to bottom: title, paragraphs, table, closing line', async () => {
      const [first, second] = await extractSections(await pricingPdf(), 'application/pdf');
      const page = lines(first);
      expect(page[0]).to.equal('Acme Cloud pricing 2024');
      expect(page[1]).to.equal('Acme Cloud is billed monthly per workspace. Prices below exclude VAT and are charged');
      expect(page.indexOf('Annual billing gives two months free. Nonprofit organisations receive a 30 percent')).to.be.lessThan(page.indexOf('Plan | Price per month | Users'));
      expect(page.at(-1)).to.equal('All plans include e-mail support and a 99.9 percent uptime commitment.');
      // Paragraphs are separated by a blank line; the table's rows stay together.
      expect(first?.text).to.include('at any time.\n\nAnnual billing');
      expect(first?.text).to.include('Plan | Price per month | Users\nStarter | 9 EUR | 1\nTeam');
      expect(lines(second)[0]).to.equal('Support and contact');
      expect(second?.text).to.include('Monday to Friday from 8:00 to 18:00 CET');
    });

    it('reads a rotated (landscape) page in reading order', async () => {
      const doc = await PDFDocument.create();
      const font = await doc.embedFont(StandardFonts.Helvetica);
      const page = doc.addPage([595, 842]);
      page.setRotation(degrees(90));
      // On a page shown turned by 90°, upright text runs up the unrotated page.
      page.drawText('First line of the landscape page', { x: 100, y: 72, size: 12, font, rotate: degrees(90) });
      page.drawText('Second line', { x: 120, y: 72, size: 12, font, rotate: degrees(90) });
      page.drawText('Left cell', { x: 140, y: 72, size: 12, font, rotate: degrees(90) });
      page.drawText('Right cell', { x: 140, y: 300, size: 12, font, rotate: degrees(90) });
      const [section] = await extractSections(Buffer.from(await doc.save()), 'application/pdf');
      expect(lines(section)).to.deep.equal(['First line of the landscape page', 'Second line', 'Left cell | Right cell']);
    });

    it('skips pages without text and numbers the others by their page', async () => {
      const doc = await PDFDocument.create();
      const font = await doc.embedFont(StandardFonts.Helvetica);
      doc.addPage().drawText('one', { x: 50, y: 700, font });
      doc.addPage();
      doc.addPage().drawText('three', { x: 50, y: 700, font });
      const sections = await extractSections(Buffer.from(await doc.save()), 'application/pdf');
      expect(sections).to.deep.equal([
        { text: 'one', position: 'page 1' },
        { text: 'three', position: 'page 3' },
      ]);
    });

    it('refuses a corrupt PDF as unreadable_document (422, exposed, no content in the message)', async () => {
      for (const bytes of [corruptPdf(), Buffer.from('not a pdf at all'), Buffer.alloc(0)]) {
        const error = await extractionFailure(extractSections(bytes, 'application/pdf'));
        expect(error).to.be.instanceOf(AppError);
        expect(error.code).to.equal('unreadable_document');
        expect(error.status).to.equal(422);
        expect(error.expose).to.equal(true);
        expect(error.message).to.not.include('Catalog').and.not.include('not a PDF any more');
      }
    });

    it('refuses a PDF with more pages than maxPages', async () => {
      const error = await extractionFailure(extractSections(await pricingPdf(), 'application/pdf', { maxPages: 1 }));
      expect(error.code).to.equal('document_too_large');
      expect(error.status).to.equal(422);
      expect(await extractSections(await pricingPdf(), 'application/pdf', { maxPages: 2 })).to.have.length(2);
    });

    it('reads a long PDF page by page', async function () {
      this.timeout(60_000);
      const doc = await PDFDocument.create();
      const font = await doc.embedFont(StandardFonts.Helvetica);
      for (let number = 1; number <= 300; number += 1) {
        const page = doc.addPage();
        for (let line = 0; line < 40; line += 1) page.drawText(`Page ${number} line ${line} of the long manual.`, { x: 50, y: 780 - line * 18, size: 11, font });
      }
      const sections = await extractSections(Buffer.from(await doc.save()), 'application/pdf');
      expect(sections).to.have.length(300);
      expect(sections[299]?.position).to.equal('page 300');
      expect(lines(sections[299])).to.have.length(40);
      expect(lines(sections[299])[39]).to.equal('Page 300 line 39 of the long manual.');
    });
  });

  describe('HTML', () => {
    it('makes a section per heading, drops link URLs, scripts, styles and images, keeps table rows on one line', async () => {
      const sections = await extractSections(fixture('faq.html'), 'text/html; charset=utf-8');
      expect(sections.map((section) => section.position)).to.deep.equal([
        'section Frequently asked questions',
        'section Can I use Acme Cloud on my phone?',
        'section How do I move my data from another service?',
        'section What does each plan include?',
        'section Is there a free trial?',
      ]);
      const all = sections.map((section) => section.text).join('\n');
      expect(all).to.include('Still stuck? Contact us.');
      expect(all).to.not.match(/https?:|utm_source|UA-SECRET|analytics|injected text|font-family|base64|enable JavaScript/);
      expect(sections[2]?.text).to.include('Settings > Import');
      expect(sections[2]?.text).to.include('Imports of up to 50 GB finish within 24 hours.');
      expect(lines(sections[3])).to.deep.equal([
        'What does each plan include?',
        'Plan | Storage | Version history',
        'Starter | 10 GB | 30 days',
        'Team | 1 TB | 180 days',
        'Enterprise | Unlimited | 10 years',
      ]);
      expect(sections[4]?.text).to.include('free for 21 days');
    });

    it('keeps a heading that has no text under it as the start of the next section', async () => {
      const sections = await extractSections(Buffer.from('<h1>Guide</h1><h2>Setup</h2><p>Plug it in.</p><p>Intro-less</p>'), 'text/html');
      expect(sections).to.deep.equal([{ text: 'Guide\n\nSetup\n\nPlug it in.\n\nIntro-less', position: 'section Setup' }]);
    });

    it('gives text before the first heading the position of the whole document', async () => {
      const sections = await extractSections(Buffer.from('<p>Preface</p><h2>Body</h2><p>Text</p>'), 'application/xhtml+xml');
      expect(sections).to.deep.equal([
        { text: 'Preface', position: '' },
        { text: 'Body\n\nText', position: 'section Body' },
      ]);
    });
  });

  describe('Markdown', () => {
    it('makes a section per heading (ATX and setext), ignores headings inside code, keeps link text', async () => {
      const sections = await extractSections(fixture('handbook.md'), 'text/markdown');
      expect(sections.map((section) => section.position)).to.deep.equal([
        'section Employee handbook',
        'section Working hours',
        'section Holidays',
        'section Equipment',
        'section Travel expenses',
      ]);
      const all = sections.map((section) => section.text).join('\n');
      expect(all).to.not.include('owner: people-team');
      expect(all).to.not.include('intranet.acme.example');
      expect(sections[0]?.text).to.include('the people team answers questions');
      expect(sections[1]?.text).to.include('Core hours are 10:00 to 15:00');
      expect(sections[2]?.text).to.include('Request holidays in PeopleHub at least');
      expect(sections[3]?.text).to.include('# this is a shell comment, not a heading');
      expect(lines(sections[3])).to.include('Home office chair | 400 EUR');
      expect(sections[3]?.text).to.not.include('---');
      expect(sections[4]?.text).to.include('PeopleHub > Expenses');
    });
  });

  describe('plain text', () => {
    it('is one section for the whole document, line breaks normalised', async () => {
      expect(await extractSections(Buffer.from('Line one\r\nLine two  \r\n\r\n\r\n\r\nNext'), 'text/plain')).to.deep.equal([{ text: 'Line one\nLine two\n\nNext', position: '' }]);
      expect(await extractSections(Buffer.from(' \n\t\n'), 'text/plain')).to.deep.equal([]);
    });

    it('decodes UTF-8 with a BOM, UTF-16 with a BOM, the declared charset, and falls back to Windows-1252', async () => {
      expect((await extractSections(Buffer.from('\ufeffGrüße', 'utf8'), 'text/plain'))[0]?.text).to.equal('Grüße');
      expect((await extractSections(Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('Grüße', 'utf16le')]), 'text/plain'))[0]?.text).to.equal('Grüße');
      expect((await extractSections(Buffer.from('Grüße', 'latin1'), 'text/plain; charset=ISO-8859-1'))[0]?.text).to.equal('Grüße');
      expect((await extractSections(Buffer.from('Grüße', 'latin1'), 'text/plain'))[0]?.text).to.equal('Grüße');
    });
  });

  describe('Word (.docx)', () => {
    it('turns headings into sections through the HTML path', async () => {
      const bytes = docx(
        paragraph('Travel policy', 'Heading1') +
          paragraph('This policy covers all business trips.') +
          paragraph('Hotels', 'Heading2') +
          paragraph('Book hotels up to 150 EUR per night.') +
          paragraph('Receipts are due within 30 days.') +
          '<w:tbl><w:tr><w:tc>' + paragraph('City') + '</w:tc><w:tc>' + paragraph('Limit') + '</w:tc></w:tr>' +
          '<w:tr><w:tc>' + paragraph('Paris') + '</w:tc><w:tc>' + paragraph('220 EUR') + '</w:tc></w:tr></w:tbl>',
      );
      const sections = await extractSections(bytes, DOCX);
      expect(sections).to.deep.equal([
        { text: 'Travel policy\n\nThis policy covers all business trips.', position: 'section Travel policy' },
        { text: 'Hotels\n\nBook hotels up to 150 EUR per night.\n\nReceipts are due within 30 days.\n\nCity | Limit\nParis | 220 EUR', position: 'section Hotels' },
      ]);
    });

    it('refuses a corrupt .docx as unreadable_document', async () => {
      for (const bytes of [Buffer.from('PK\u0003\u0004 broken zip'), zip({ 'hello.txt': 'not a Word document' })]) {
        const error = await extractionFailure(extractSections(bytes, DOCX));
        expect(error.code).to.equal('unreadable_document');
        expect(error.status).to.equal(422);
      }
    });
  });

  describe('types', () => {
    it('refuses an unsupported type with unsupported_document (422, exposed)', async () => {
      const error = await extractionFailure(extractSections(Buffer.from('GIF89a'), 'image/gif'));
      expect(error.code).to.equal('unsupported_document');
      expect(error.status).to.equal(422);
      expect(error.expose).to.equal(true);
      expect(error.message).to.include('image/gif');
      const odd = await extractionFailure(extractSections(Buffer.from('x'), '<script>alert(1)</script>'));
      expect(odd.message).to.not.include('<script>');
    });

    it('tells which types are supported, parameters and case aside', () => {
      expect(isSupportedType('Text/Markdown; charset=utf-8')).to.equal(true);
      expect(isSupportedType(DOCX)).to.equal(true);
      expect(isSupportedType('application/msword')).to.equal(false);
    });
  });
});
