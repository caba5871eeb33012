import { expect } from 'chai';
import fc from 'fast-check';
import { chunkSections, paragraphs, tail } from '../../shared/knowledge/chunk.js';
import type { TextChunk, TextSection } from '../../shared/knowledge/types.js';

const words = (text: string): string[] => text.split(/\s+/).filter((word) => word !== '');

/**
 * Checks that the chunks of one section are contiguous runs of its words, in order, covering all of them: each
 * chunk starts at or before the end of what the previous chunks covered (overlap) and not before the previous start.
 */
function expectOrderedCover(sectionWords: string[], chunks: readonly TextChunk[]): void {
  let covered = 0;
  let previousStart = 0;
  for (const chunk of chunks) {
    const tokens = words(chunk.text);
    let start = -1;
    for (let candidate = Math.min(covered, sectionWords.length - tokens.length); candidate >= previousStart; candidate -= 1) {
      if (tokens.every((token, offset) => sectionWords[candidate + offset] === token)) {
        start = candidate;
        break;
      }
    }
    expect(start, `chunk ${chunk.index} is not a run of the section's words continuing the previous chunk: ${JSON.stringify(chunk.text)}`).to.be.at.least(0);
    previousStart = start;
    covered = Math.max(covered, start + tokens.length);
  }
  expect(covered).to.equal(sectionWords.length);
}

const word = fc.stringMatching(/^[A-Za-z0-9äöüéß'’,.;:!?()-]{1,12}$/);
const spacing = fc.constantFrom(' ', ' ', ' ', '  ', '\t', '\n', '\n\n', ' \n \n ', '. ', '! ');
/** Text made of short words and mixed white space (sentences, line breaks, paragraphs). */
const text = fc.array(fc.tuple(word, spacing), { maxLength: 300 }).map((parts) => parts.map(([token, space]) => token + space).join(''));
const section = fc.record({ text, position: fc.constantFrom('', 'page 1', 'section Pricing') });
const options = fc.integer({ min: 20, max: 400 }).chain((maxChars) => fc.record({ maxChars: fc.constant(maxChars), overlapChars: fc.integer({ min: 0, max: maxChars - 1 }) }));

describe('knowledge: chunking', () => {
  it('packs short paragraphs of one section into one chunk, paragraphs separated by a blank line', () => {
    const chunks = chunkSections([{ text: 'First   paragraph.\nSecond line.\n\n\n  Another paragraph.  ', position: 'page 1' }]);
    expect(chunks).to.deep.equal([{ index: 0, text: 'First paragraph.\nSecond line.\n\nAnother paragraph.', position: 'page 1' }]);
  });

  it('never crosses sections, keeps their positions and numbers chunks 0..n-1', () => {
    const chunks = chunkSections([
      { text: 'Alpha text.', position: 'section A' },
      { text: '   ', position: 'section Empty' },
      { text: 'Beta text.', position: 'section B' },
    ]);
    expect(chunks).to.deep.equal([
      { index: 0, text: 'Alpha text.', position: 'section A' },
      { index: 1, text: 'Beta text.', position: 'section B' },
    ]);
  });

  it('splits at paragraphs first, then sentences, and overlaps the tail of the previous chunk', () => {
    const sentence = (n: number): string => `Sentence number ${n} tells one fact about the product.`;
    const long = Array.from({ length: 40 }, (_, n) => sentence(n)).join(' ');
    const chunks = chunkSections([{ text: `Short intro.\n\n${long}`, position: 'page 2' }], { maxChars: 300, overlapChars: 80 });
    expect(chunks.length).to.be.greaterThan(5);
    for (const chunk of chunks) {
      expect(chunk.text.length).to.be.at.most(300);
      expect(chunk.position).to.equal('page 2');
    }
    expect(chunks[0]?.text.startsWith('Short intro.\n\nSentence number 0')).to.equal(true);
    // Every chunk ends at a sentence end, and each starts with the previous one's tail.
    for (let index = 1; index < chunks.length; index += 1) {
      const previous = chunks[index - 1]?.text ?? '';
      const current = chunks[index]?.text ?? '';
      expect(previous.endsWith('.')).to.equal(true);
      const head = words(current).slice(0, 3).join(' ');
      expect(previous.includes(head), `chunk ${index} should start with the tail of chunk ${index - 1}`).to.equal(true);
    }
  });

  it('cuts a word longer than maxChars hard, and only then', () => {
    const giant = 'x'.repeat(250);
    const chunks = chunkSections([{ text: `before ${giant} after`, position: '' }], { maxChars: 100, overlapChars: 20 });
    expect(chunks.every((chunk) => chunk.text.length <= 100)).to.equal(true);
    expect(chunks.map((chunk) => chunk.text).join('')).to.include('x'.repeat(100));
    expect(chunks[0]?.text).to.equal('before');
    expect(chunks.at(-1)?.text.endsWith(' after')).to.equal(true);
    expect(chunks.map((chunk) => chunk.text.replace(/[^x]/g, '')).join('')).to.have.length(250);
  });

  it('does not split a surrogate pair when cutting a long word', () => {
    const emoji = '😀'.repeat(30);
    const chunks = chunkSections([{ text: emoji, position: '' }], { maxChars: 7, overlapChars: 0 });
    expect(chunks.every((chunk) => chunk.text.length <= 7 && !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/.test(chunk.text))).to.equal(true);
    expect(chunks.map((chunk) => chunk.text).join('')).to.equal(emoji);
  });

  it('refuses impossible options', () => {
    expect(() => chunkSections([], { maxChars: 0 })).to.throw(RangeError);
    expect(() => chunkSections([], { maxChars: 100, overlapChars: 100 })).to.throw(RangeError);
    expect(() => chunkSections([], { overlapChars: -1 })).to.throw(RangeError);
  });

  it('normalises paragraphs and takes tails at word boundaries', () => {
    expect(paragraphs(' a  b \r\n c\t\n \n\n d ')).to.deep.equal(['a b\nc', 'd']);
    expect(tail('one two three', 9)).to.equal('two three');
    expect(tail('one two three', 8)).to.equal('three');
    expect(tail('one two three', 100)).to.equal('one two three');
    expect(tail('one two three', 3)).to.equal('');
    expect(tail('abcdef', 3)).to.equal('');
  });

  describe('properties', () => {
    it('every chunk is at most maxChars, non-empty, trimmed, and the indexes are 0..n-1', () => {
      fc.assert(
        fc.property(fc.array(section, { maxLength: 4 }), options, (sections, chunkOptions) => {
          const chunks = chunkSections(sections, chunkOptions);
          chunks.forEach((chunk, index) => {
            expect(chunk.index).to.equal(index);
            expect(chunk.text.length).to.be.within(1, chunkOptions.maxChars);
            expect(chunk.text).to.equal(chunk.text.trim());
            expect(chunk.text).to.not.match(/[ \t]{2}|\n{3}/);
          });
        }),
        { numRuns: 300 },
      );
    });

    it('every word of the input is in a chunk, in order, each chunk a run of consecutive words of its section', () => {
      fc.assert(
        fc.property(section, options, (one, chunkOptions) => {
          const chunks = chunkSections([one], chunkOptions);
          const sectionWords = words(one.text);
          if (sectionWords.length === 0) expect(chunks).to.deep.equal([]);
          else expectOrderedCover(sectionWords, chunks);
          expect(chunks.every((chunk) => chunk.position === one.position)).to.equal(true);
        }),
        { numRuns: 400 },
      );
    });

    it('chunks several sections as each on its own, numbered on', () => {
      fc.assert(
        fc.property(fc.array(section, { maxLength: 4 }), options, (sections: TextSection[], chunkOptions) => {
          const separately = sections.flatMap((one) => chunkSections([one], chunkOptions).map(({ text: chunkText, position }) => ({ text: chunkText, position })));
          expect(chunkSections(sections, chunkOptions)).to.deep.equal(separately.map((chunk, index) => ({ index, ...chunk })));
        }),
        { numRuns: 200 },
      );
    });

    it('with words longer than maxChars, chunks still fit and their pieces rebuild the words', () => {
      const longWords = fc.array(fc.stringMatching(/^[a-z]{1,60}$/), { minLength: 1, maxLength: 30 });
      fc.assert(
        fc.property(longWords, fc.integer({ min: 5, max: 30 }), (tokens, maxChars) => {
          const chunks = chunkSections([{ text: tokens.join(' '), position: '' }], { maxChars, overlapChars: Math.floor(maxChars / 3) });
          expect(chunks.every((chunk) => chunk.text.length <= maxChars)).to.equal(true);
          const joined = chunks.map((chunk) => chunk.text).join(' ');
          for (const token of tokens) {
            if (token.length <= maxChars) expect(words(joined)).to.include(token);
          }
        }),
        { numRuns: 200 },
      );
    });

    it('is deterministic', () => {
      fc.assert(
        fc.property(fc.array(section, { maxLength: 3 }), options, (sections, chunkOptions) => {
          expect(chunkSections(sections, chunkOptions)).to.deep.equal(chunkSections(sections, chunkOptions));
        }),
        { numRuns: 50 },
      );
    });
  });
});
