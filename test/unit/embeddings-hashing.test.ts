import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import fc from 'fast-check';
import { HASHING_DIMENSION, HASHING_MODEL, HashingEmbedder, createEmbedder } from '../../adapters/embeddings/index.js';
import { testConfig } from '../helpers/config.js';

const dot = (a: number[], b: number[]): number => a.reduce((sum, value, index) => sum + value * (b[index] ?? 0), 0);
const norm = (a: number[]): number => Math.sqrt(dot(a, a));

interface Labelled {
  documents: { id: string; title: string; text: string }[];
  queries: { query: string; relevant: string[] }[];
}

describe('embeddings: hashing embedder', () => {
  const embedder = new HashingEmbedder();

  it('names its model and dimension and gives one unit vector per text, in order', async () => {
    expect(embedder.model).to.equal(HASHING_MODEL);
    expect(embedder.model).to.equal('botserver-hashing-v1');
    expect(embedder.dimension).to.equal(HASHING_DIMENSION);
    expect(embedder.dimension).to.equal(384);
    const vectors = await embedder.embed(['first text', 'second text', '', '?!']);
    expect(vectors).to.have.length(4);
    for (const vector of vectors) {
      expect(vector).to.have.length(384);
      expect(norm(vector)).to.be.closeTo(1, 1e-9);
    }
    const [again] = await embedder.embed(['second text']);
    expect(again).to.deep.equal(vectors[1]);
    expect(await embedder.embed([])).to.deep.equal([]);
  });

  it('scores paraphrases sharing words above unrelated texts', async () => {
    const cases: [string, string, string][] = [
      ['How do I reset my password?', 'Steps to reset a forgotten password', 'Our office is closed on public holidays.'],
      ['What are your opening hours on Saturday?', 'We are open on Saturdays from 9 to 13.', 'Refunds take 5 to 10 business days.'],
      ['Can I get a refund for my order?', 'Refunds for orders are issued within 14 days.', 'The router LED blinks amber during a reset.'],
      ['invoice download', 'Where can I download my invoices?', 'Inviting colleagues to the workspace'],
    ];
    for (const [query, paraphrase, unrelated] of cases) {
      const [q = [], p = [], u = []] = await embedder.embed([query, paraphrase, unrelated]);
      expect(dot(q, p), `${query} ~ ${paraphrase}`).to.be.greaterThan(dot(q, u) + 0.1);
    }
  });

  it('is close for inflections and typos (character trigrams)', async () => {
    const [invoice = [], invoices = [], other = []] = await embedder.embed(['invoice', 'invoices', 'holiday']);
    expect(dot(invoice, invoices)).to.be.greaterThan(0.5);
    expect(dot(invoice, invoices)).to.be.greaterThan(dot(invoice, other) + 0.3);
  });

  it('finds the right document for most queries of the labelled set that share words with it', async () => {
    const set = JSON.parse(readFileSync(new URL('../fixtures/knowledge/labelled.json', import.meta.url), 'utf8')) as Labelled;
    expect(set.documents.length).to.be.within(25, 40);
    expect(set.queries.length).to.be.within(35, 50);
    const ids = new Set(set.documents.map((document) => document.id));
    for (const query of set.queries) for (const id of query.relevant) expect(ids.has(id), id).to.equal(true);
    const documents = await embedder.embed(set.documents.map((document) => `${document.title}\n\n${document.text}`));
    let inTopFive = 0;
    for (const { query, relevant } of set.queries) {
      const [vector = []] = await embedder.embed([query]);
      const ranked = documents.map((document, index) => ({ id: set.documents[index]?.id, score: dot(vector, document) })).sort((a, b) => b.score - a.score);
      if (ranked.slice(0, 5).some((hit) => relevant.includes(hit.id ?? ''))) inTopFive += 1;
    }
    // Lexical only: queries that share no word with their answer are left to a real embedding model.
    expect(inTopFive / set.queries.length).to.be.at.least(0.7);
  });

  it('is deterministic and always unit length (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 300 }), async (text) => {
        const [first = [], second = []] = await embedder.embed([text, text]);
        expect(first).to.deep.equal(second);
        expect(norm(first)).to.be.closeTo(1, 1e-9);
        expect(first.every((value) => Number.isFinite(value))).to.equal(true);
      }),
      { numRuns: 200 },
    );
  });

  it('is what createEmbedder gives when no embeddings endpoint is configured', async () => {
    const created = await createEmbedder(testConfig());
    expect(created).to.be.instanceOf(HashingEmbedder);
  });
});
