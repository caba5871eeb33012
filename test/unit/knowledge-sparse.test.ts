import { expect } from 'chai';
import fc from 'fast-check';
import { BM25_AVG_LEN, BM25_B, BM25_K1, fnv1a32, sparseQuery, sparseVector, tokenize } from '../../shared/knowledge/sparse.js';

const weightOf = (vector: { indices: number[]; values: number[] }, term: string): number | undefined => {
  const position = vector.indices.indexOf(fnv1a32(term));
  return position < 0 ? undefined : vector.values[position];
};

const bm25 = (tf: number, len: number): number => (tf * (BM25_K1 + 1)) / (tf + BM25_K1 * (1 - BM25_B + (BM25_B * len) / BM25_AVG_LEN));

describe('knowledge: sparse vectors', () => {
  it('hashes with FNV-1a 32-bit over UTF-8', () => {
    // Published FNV-1a test vectors.
    expect(fnv1a32('')).to.equal(0x811c9dc5);
    expect(fnv1a32('a')).to.equal(0xe40c292c);
    expect(fnv1a32('foobar')).to.equal(0xbf9cf968);
    expect(fnv1a32('é')).to.equal(fnv1a32('\u00e9'));
  });

  it('tokenises: NFKC, lower case, letters and digits, no stop words, no 1-character tokens', () => {
    expect(tokenize('The AX-3000 router: reset it in 10 s, a ﬁrmware update!')).to.deep.equal(['ax', '3000', 'router', 'reset', '10', 'firmware', 'update']);
    expect(tokenize('Größe ÄNDERN, café vs cafe\u0301; Ｆｕｌｌｗｉｄｔｈ')).to.deep.equal(['größe', 'ändern', 'café', 'vs', 'café', 'fullwidth']);
    expect(tokenize('日本語 テキスト')).to.deep.equal(['日本語', 'テキスト']);
    expect(tokenize('I a 😀 x')).to.deep.equal([]);
  });

  it('weighs terms with BM25 term-frequency saturation over the passage length', () => {
    const vector = sparseVector('refund refund refund policy days');
    expect(weightOf(vector, 'refund')).to.be.closeTo(bm25(3, 5), 1e-12);
    expect(weightOf(vector, 'policy')).to.be.closeTo(bm25(1, 5), 1e-12);
    expect(weightOf(vector, 'the')).to.equal(undefined);
    // Saturation: more occurrences weigh more, but less than proportionally, and never above k1 + 1.
    const many = sparseVector('refund '.repeat(50));
    expect(weightOf(many, 'refund')).to.be.lessThan(BM25_K1 + 1);
    // A term in a longer passage weighs less.
    const long = sparseVector(`refund ${'filler '.repeat(300)}`);
    expect(weightOf(long, 'refund')).to.be.lessThan(weightOf(sparseVector('refund policy'), 'refund') ?? 0);
  });

  it('gives a query each distinct term with weight 1', () => {
    const query = sparseQuery('Refund the refund policy?');
    expect(query.indices).to.deep.equal([fnv1a32('refund'), fnv1a32('policy')].sort((a, b) => a - b));
    expect(query.values).to.deep.equal([1, 1]);
    expect(sparseQuery('the of and')).to.deep.equal({ indices: [], values: [] });
    expect(sparseVector('')).to.deep.equal({ indices: [], values: [] });
  });

  it('matches exact rare terms such as product codes', () => {
    const query = sparseQuery('E-4012');
    const passage = sparseVector('Error E-4012 means the sync token expired.');
    expect(query.indices.every((index) => passage.indices.includes(index))).to.equal(true);
  });

  describe('properties', () => {
    const anyText = fc.oneof(fc.string({ maxLength: 400 }), fc.array(fc.constantFrom('refund', 'the', 'Plan', 'AX-3000', 'Größe', '10', 'a', '日本'), { maxLength: 80 }).map((words) => words.join(' ')));

    it('indices are sorted, unique uint32; values positive and finite; both arrays the same length', () => {
      fc.assert(
        fc.property(anyText, (text) => {
          for (const vector of [sparseVector(text), sparseQuery(text)]) {
            expect(vector.indices.length).to.equal(vector.values.length);
            vector.indices.forEach((index, position) => {
              expect(Number.isInteger(index) && index >= 0 && index <= 0xffffffff).to.equal(true);
              if (position > 0) expect(index).to.be.greaterThan(vector.indices[position - 1] ?? -1);
            });
            for (const value of vector.values) expect(Number.isFinite(value) && value > 0).to.equal(true);
          }
        }),
        { numRuns: 300 },
      );
    });

    it('the same text gives the same vector; a query has the passage vector’s terms', () => {
      fc.assert(
        fc.property(anyText, (text) => {
          expect(sparseVector(text)).to.deep.equal(sparseVector(text));
          expect(sparseQuery(text).indices).to.deep.equal(sparseVector(text).indices);
        }),
        { numRuns: 200 },
      );
    });
  });
});
