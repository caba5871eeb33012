/**
 * Chunking: sections into passages sized for retrieval. Within a section, paragraphs (split at blank lines) are
 * packed greedily up to `maxChars`; a paragraph too long for one chunk is split into sentences, a sentence too long
 * into words, and only a single word longer than `maxChars` is cut hard. Each chunk after the first of a section
 * starts with the tail of the previous chunk (at most `overlapChars`, starting at a word boundary), so a fact split
 * across a boundary is still found. A chunk never spans two sections and keeps its section's position.
 *
 * White space is normalised: runs of spaces and tabs become one space, lines are trimmed, paragraphs are separated
 * by one blank line. Chunks are numbered 0..n-1 across the whole document.
 */
import type { TextChunk, TextSection } from './types.js';

export interface ChunkOptions {
  /** Longest chunk, in characters (UTF-16 code units); default 1200. */
  maxChars?: number;
  /** Longest overlap carried from the previous chunk of the same section; default 200; less than maxChars. */
  overlapChars?: number;
}

/** A piece to pack, with what joins it to the piece before it. */
interface Unit {
  text: string;
  /** `\n\n` between paragraphs, `\n` between lines of a paragraph, ` ` between sentences or words, `` inside a word. */
  join: string;
}

const SENTENCE_END = /(?<=[.!?;:…。！？])\s+/u;

export function chunkSections(sections: readonly TextSection[], options: ChunkOptions = {}): TextChunk[] {
  const maxChars = options.maxChars ?? 1200;
  const overlapChars = options.overlapChars ?? 200;
  if (!Number.isInteger(maxChars) || maxChars < 1) throw new RangeError('maxChars must be a positive integer');
  if (!Number.isInteger(overlapChars) || overlapChars < 0 || overlapChars >= maxChars) {
    throw new RangeError('overlapChars must be an integer from 0 to maxChars - 1');
  }
  const chunks: TextChunk[] = [];
  for (const section of sections) {
    for (const text of packSection(units(section.text, maxChars), maxChars, overlapChars)) {
      chunks.push({ index: chunks.length, text, position: section.position });
    }
  }
  return chunks;
}

/** Normalised paragraphs: lines trimmed, inner white space collapsed, empty lines as separators. */
export function paragraphs(text: string): string[] {
  return text
    .replace(/\r\n?/g, '\n')
    .split(/\n[^\S\n]*\n\s*/)
    .map((paragraph) =>
      paragraph
        .split('\n')
        .map((line) => line.replace(/\s+/g, ' ').trim())
        .filter((line) => line !== '')
        .join('\n'),
    )
    .filter((paragraph) => paragraph !== '');
}

/** The section's text as units no longer than maxChars, the largest that fit: paragraphs, sentences, words, pieces. */
function units(text: string, maxChars: number): Unit[] {
  const out: Unit[] = [];
  for (const paragraph of paragraphs(text)) {
    const first = out.length;
    if (paragraph.length <= maxChars) out.push({ text: paragraph, join: ' ' });
    else splitParagraph(paragraph, maxChars, out);
    const head = out[first];
    if (head !== undefined) head.join = '\n\n';
  }
  return out;
}

function splitParagraph(paragraph: string, maxChars: number, out: Unit[]): void {
  paragraph.split('\n').forEach((line, lineIndex) => {
    line.split(SENTENCE_END).forEach((sentence, sentenceIndex) => {
      const join = sentenceIndex > 0 ? ' ' : lineIndex > 0 ? '\n' : ' ';
      if (sentence.length <= maxChars) {
        out.push({ text: sentence, join });
        return;
      }
      sentence.split(' ').forEach((word, wordIndex) => {
        const wordJoin = wordIndex > 0 ? ' ' : join;
        for (let start = 0; start < word.length; ) {
          let end = Math.min(start + maxChars, word.length);
          // Never between the two halves of a surrogate pair (unless one code point is all that fits).
          if (end < word.length && end - start > 1 && /[\uD800-\uDBFF]/.test(word.charAt(end - 1))) end -= 1;
          out.push({ text: word.slice(start, end), join: start === 0 ? wordJoin : '' });
          start = end;
        }
      });
    });
  });
}

/** The last at most `budget` characters of `text`, starting at a word boundary; '' when no whole word fits. */
export function tail(text: string, budget: number): string {
  if (budget <= 0) return '';
  if (text.length <= budget) return text;
  const start = text.length - budget;
  if (/\s/.test(text.charAt(start - 1))) return text.slice(start).trimStart();
  const boundary = text.slice(start).search(/\s/);
  return boundary < 0 ? '' : text.slice(start + boundary).trimStart();
}

function packSection(pieces: Unit[], maxChars: number, overlapChars: number): string[] {
  const out: string[] = [];
  // `current` always holds at least one unit not yet in an emitted chunk (the overlap alone is never emitted).
  let current = '';
  for (const unit of pieces) {
    if (current === '') {
      current = unit.text;
    } else if (current.length + unit.join.length + unit.text.length <= maxChars) {
      current += unit.join + unit.text;
    } else {
      out.push(current);
      // A hard-cut word continues without overlap: its pieces share no word boundary to start from.
      const overlap = unit.join === '' ? '' : tail(current, Math.min(overlapChars, maxChars - unit.text.length - unit.join.length));
      current = overlap === '' ? unit.text : overlap + unit.join + unit.text;
    }
  }
  if (current !== '') out.push(current);
  return out;
}
