/**
 * The built-in embedder: needs no model download and no endpoint, so a server without EMBEDDINGS_BASE_URL still has
 * a knowledge base. It is lexical, not semantic: texts score as similar when they share words, word pairs or word
 * pieces (so "invoices" is close to "invoice"), never when they only mean the same.
 *
 * Feature hashing ("the hashing trick") into 384 dimensions. The features of a text are, over its terms (the
 * sparse vectors' tokeniser: NFKC, lower-case, letters and digits, no stop words or 1-character tokens):
 *   - each word (weight 1),
 *   - each pair of consecutive words (weight 0.5): word order and phrases,
 *   - each character trigram of each word padded as `<word>` (weight 1 each): spelling variants, inflections,
 *     compounds and typos (the weights were chosen on test/fixtures/knowledge/labelled.json: trigrams help most).
 * A feature's count tf becomes 1 + ln tf (sublinear, so repeats do not dominate), times its weight. Each feature is
 * hashed (FNV-1a 32-bit) to a dimension and to a sign (from a mix of the same hash): with signed hashing, features
 * that collide cancel out in expectation instead of adding up, so collisions do not bias similarities upwards.
 * The vector is L2-normalised; a text with no features maps to a fixed unit vector. Fully deterministic.
 */
import { fnv1a32, tokenize } from '../../shared/knowledge/sparse.js';
import type { Embedder } from './types.js';

export const HASHING_MODEL = 'botserver-hashing-v1';
export const HASHING_DIMENSION = 384;

const WORD_WEIGHT = 1;
const BIGRAM_WEIGHT = 0.5;
const TRIGRAM_WEIGHT = 1;

/** MurmurHash3's 32-bit finaliser: spreads every bit of `hash` over the result (the sign uses its top bit). */
function mix(hash: number): number {
  let h = hash >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A text's features with their weights before the sublinear transform: feature → [count, weight]. */
function features(text: string): Map<string, { count: number; weight: number }> {
  const out = new Map<string, { count: number; weight: number }>();
  const add = (feature: string, weight: number): void => {
    const entry = out.get(feature);
    if (entry === undefined) out.set(feature, { count: 1, weight });
    else entry.count += 1;
  };
  const words = tokenize(text);
  words.forEach((word, index) => {
    add(`w:${word}`, WORD_WEIGHT);
    const previous = words[index - 1];
    if (previous !== undefined) add(`b:${previous} ${word}`, BIGRAM_WEIGHT);
    const padded = [...`<${word}>`];
    for (let start = 0; start + 3 <= padded.length; start += 1) add(`t:${padded.slice(start, start + 3).join('')}`, TRIGRAM_WEIGHT);
  });
  return out;
}

/** The embedding of one text (unit length, HASHING_DIMENSION components). */
export function hashingVector(text: string, dimension = HASHING_DIMENSION): number[] {
  const vector = new Array<number>(dimension).fill(0);
  let found = features(text);
  if (found.size === 0) found = new Map([['empty:', { count: 1, weight: 1 }]]);
  for (const [feature, { count, weight }] of found) {
    const hash = fnv1a32(feature);
    const index = hash % dimension;
    const sign = mix(hash) >>> 31 === 1 ? -1 : 1;
    vector[index] = (vector[index] ?? 0) + sign * weight * (1 + Math.log(count));
  }
  let squares = 0;
  for (const value of vector) squares += value * value;
  let norm = Math.sqrt(squares);
  if (norm === 0) {
    // Every feature cancelled out (possible, if unlikely, with signed hashing): fall back to the empty vector.
    vector[fnv1a32('empty:') % dimension] = 1;
    norm = 1;
  }
  return vector.map((value) => value / norm);
}

export class HashingEmbedder implements Embedder {
  readonly model = HASHING_MODEL;
  readonly dimension = HASHING_DIMENSION;

  embed(texts: readonly string[]): Promise<number[][]> {
    return Promise.resolve(texts.map((text) => hashingVector(text, this.dimension)));
  }
}
