/**
 * Sparse vectors for Qdrant's BM25-style lexical retrieval. Qdrant keeps the IDF half (the collection's sparse
 * vector is declared with `modifier: idf`, so it weighs each term by its rarity across the stored points); these
 * vectors carry the other half:
 *
 * - a passage (`sparseVector`): per term, BM25's saturated term frequency
 *   `tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / AVG_LEN))`, with len the passage's token count;
 * - a query (`sparseQuery`): each distinct term with weight 1, so the score is Σ idf(term) × passage weight, which is
 *   BM25.
 *
 * AVG_LEN is a fixed constant (256 tokens) rather than the corpus's mean length, so that a passage's vector does not
 * depend on what else is indexed and never needs recomputing. Chunks of up to 1200 characters hold ~100–200 tokens
 * after stop words, so shorter passages get a mild boost, as in BM25.
 *
 * Terms are runs of Unicode letters, marks and digits after NFKC and lower-casing; 1-character tokens and a small
 * list of English stop words are dropped. A term's index is its FNV-1a 32-bit hash (UTF-8); terms that collide
 * share an index and their weights are summed. Indices are sorted ascending and unique, as Qdrant requires.
 */

export interface SparseVector {
  indices: number[];
  values: number[];
}

export const BM25_K1 = 1.2;
export const BM25_B = 0.75;
/** The assumed mean passage length in tokens (a constant, independent of the documents indexed). */
export const BM25_AVG_LEN = 256;

export const STOP_WORDS: ReadonlySet<string> = new Set(
  (
    'an and are as at be been but by can could did do does for from had has have he her his how if in into is it its ' +
    'me my no not of on or our she so such than that the their them then there these they this those to too us was ' +
    'we were what when where which who whom why will with would you your'
  ).split(' '),
);

const TOKEN = /[\p{L}\p{M}\p{N}]+/gu;

/** The terms of a text, in order, repeats kept. */
export function tokenize(text: string): string[] {
  const tokens: string[] = [];
  for (const match of text.normalize('NFKC').toLowerCase().matchAll(TOKEN)) {
    const token = match[0];
    if (token.length === 1 || (token.length === 2 && (token.codePointAt(0) ?? 0) > 0xffff)) continue;
    if (STOP_WORDS.has(token)) continue;
    tokens.push(token);
  }
  return tokens;
}

const encoder = new TextEncoder();

/** FNV-1a, 32 bits, over the UTF-8 bytes of `text` (an unsigned integer). */
export function fnv1a32(text: string, seed = 0x811c9dc5): number {
  let hash = seed >>> 0;
  for (const byte of encoder.encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

function toVector(weights: Map<number, number>): SparseVector {
  const indices = [...weights.keys()].sort((a, b) => a - b);
  return { indices, values: indices.map((index) => weights.get(index) ?? 0) };
}

/** A passage's sparse vector: BM25 term-frequency weights (Qdrant's IDF modifier supplies the rest). */
export function sparseVector(text: string): SparseVector {
  const tokens = tokenize(text);
  const counts = new Map<string, number>();
  for (const token of tokens) counts.set(token, (counts.get(token) ?? 0) + 1);
  const norm = BM25_K1 * (1 - BM25_B + (BM25_B * tokens.length) / BM25_AVG_LEN);
  const weights = new Map<number, number>();
  for (const [term, tf] of counts) {
    const index = fnv1a32(term);
    weights.set(index, (weights.get(index) ?? 0) + (tf * (BM25_K1 + 1)) / (tf + norm));
  }
  return toVector(weights);
}

/** A query's sparse vector: each distinct term with weight 1 (colliding terms sum). */
export function sparseQuery(text: string): SparseVector {
  const weights = new Map<number, number>();
  for (const term of new Set(tokenize(text))) {
    const index = fnv1a32(term);
    weights.set(index, (weights.get(index) ?? 0) + 1);
  }
  return toVector(weights);
}
