/**
 * Text extraction for the knowledge base: turns an uploaded document into sections of plain text, each with where it
 * came from (`page 3`, `section Opening hours`, or `''` when the document has no finer position than itself).
 *
 * - text/plain: one section, position `''`.
 * - text/markdown: a section per heading (ATX `#` and setext `===`/`---`), position `section <heading text>`; the
 *   heading is the section's first paragraph; text before the first heading has position `''`. Links and images keep
 *   their text, emphasis and code markers are dropped, front matter and link definitions are left out.
 * - text/html: html-to-text, headings (h1–h6) are section boundaries like Markdown's, link URLs and images are
 *   dropped, script/style/template/noscript/nav are ignored; a table row is one line with cells joined by ` | `.
 * - application/pdf: pdfjs-dist, page by page (position `page N`), text items regrouped into lines by their
 *   position (see `pageLines`) so that reading order and table rows survive.
 * - .docx: mammoth to HTML (images left out, no external files), then the HTML path.
 *
 * Errors are ExtractionError (422, exposed): `unsupported_document`, `unreadable_document` (a short reason, never
 * the document's content) and `document_too_large` (a PDF with more pages than `maxPages`).
 */
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { convert, type DomNode, type FormatCallback, type HtmlToTextOptions } from 'html-to-text';
import mammoth from 'mammoth';
import { AppError } from '../errors.js';
import type { TextSection } from './types.js';

export const DEFAULT_MAX_PAGES = 2000;

export const MEDIA_TYPES = {
  text: 'text/plain',
  markdown: 'text/markdown',
  html: 'text/html',
  pdf: 'application/pdf',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
} as const;

/** Other names the same formats go by. */
const ALIASES: Readonly<Record<string, string>> = {
  'text/x-markdown': MEDIA_TYPES.markdown,
  'application/xhtml+xml': MEDIA_TYPES.html,
};

export type ExtractionErrorCode = 'unsupported_document' | 'unreadable_document' | 'document_too_large';

/** A document that cannot be turned into text; the message names the format and a short reason, never content. */
export class ExtractionError extends AppError {
  constructor(code: ExtractionErrorCode, message: string) {
    super(code, message, { status: 422, expose: true });
  }
}

export interface ExtractOptions {
  /** A PDF with more pages is refused (`document_too_large`) rather than indexed in part (default 2000). */
  maxPages?: number;
}

/** The media types extractSections reads. */
export function isSupportedType(type: string): boolean {
  return (Object.values(MEDIA_TYPES) as string[]).includes(baseType(type));
}

function baseType(type: string): string {
  const base = (type.split(';')[0] ?? '').trim().toLowerCase();
  return ALIASES[base] ?? base;
}

function charsetOf(type: string): string | undefined {
  const match = /;\s*charset\s*=\s*"?([A-Za-z0-9._:-]+)"?/i.exec(type);
  return match?.[1]?.toLowerCase();
}

export async function extractSections(bytes: Buffer, type: string, options: ExtractOptions = {}): Promise<TextSection[]> {
  const base = baseType(type);
  switch (base) {
    case MEDIA_TYPES.text:
      return plainSections(decodeText(bytes, charsetOf(type)));
    case MEDIA_TYPES.markdown:
      return markdownSections(decodeText(bytes, charsetOf(type)));
    case MEDIA_TYPES.html:
      return htmlSections(decodeText(bytes, charsetOf(type)));
    case MEDIA_TYPES.pdf:
      return pdfSections(bytes, options.maxPages ?? DEFAULT_MAX_PAGES);
    case MEDIA_TYPES.docx:
      return docxSections(bytes);
    default:
      throw new ExtractionError('unsupported_document', `documents of type ${describeType(base)} cannot be read; use PDF, Word (.docx), HTML, Markdown or plain text`);
  }
}

/** The media type as safe to echo: a plain token, or a placeholder. */
function describeType(base: string): string {
  return /^[a-z0-9.+-]{1,64}\/[a-z0-9.+-]{1,128}$/.test(base) ? base : 'unknown';
}

// ---------------------------------------------------------------------------------------------------------------
// Text

/** Control characters other than tab and line breaks; they carry no text and would confuse the markers below. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F]/g;

/** Bytes to text: a byte-order mark wins, then the declared charset, then UTF-8, then Windows-1252. */
export function decodeText(bytes: Uint8Array, charset?: string): string {
  let text: string | undefined;
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) text = new TextDecoder('utf-8').decode(bytes.subarray(3));
  else if (bytes[0] === 0xff && bytes[1] === 0xfe) text = new TextDecoder('utf-16le').decode(bytes.subarray(2));
  else if (bytes[0] === 0xfe && bytes[1] === 0xff) text = new TextDecoder('utf-16be').decode(bytes.subarray(2));
  if (text === undefined && charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    try {
      text = new TextDecoder(charset).decode(bytes);
    } catch {
      text = undefined; // an unknown charset label: guess as below
    }
  }
  if (text === undefined) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      text = new TextDecoder('windows-1252').decode(bytes);
    }
  }
  return text.replace(/\r\n?/g, '\n').replace(CONTROL, '');
}

/** Trims each line's end and drops leading and trailing blank lines; keeps inner blank lines (paragraph breaks). */
function tidy(text: string): string {
  return text
    .split('\n')
    .map((line) => line.replace(/[ \t\u00a0]+$/u, ''))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function plainSections(text: string): TextSection[] {
  const tidied = tidy(text);
  return tidied === '' ? [] : [{ text: tidied, position: '' }];
}

const MAX_HEADING_IN_POSITION = 200;

/**
 * Collects sections from a stream of headings and body lines. A heading with no body before the next heading is
 * kept as the first line of the next section (a title followed by a sub-heading is not lost).
 */
class SectionBuilder {
  private readonly sections: TextSection[] = [];
  private position = '';
  private headingText: string[] = [];
  private body: string[] = [];

  heading(text: string): void {
    const clean = text.replace(/\s+/g, ' ').trim();
    if (clean === '') return;
    if (this.hasBody()) {
      this.flush();
      this.headingText = [];
    }
    this.headingText.push(clean);
    const short = clean.length > MAX_HEADING_IN_POSITION ? `${clean.slice(0, MAX_HEADING_IN_POSITION).trimEnd()}…` : clean;
    this.position = `section ${short}`;
  }

  line(text: string): void {
    this.body.push(text);
  }

  finish(): TextSection[] {
    if (this.hasBody()) this.flush();
    else if (this.headingText.length > 0) this.sections.push({ text: this.headingText.join('\n\n'), position: this.position });
    return this.sections;
  }

  private hasBody(): boolean {
    return this.body.some((line) => line.trim() !== '');
  }

  private flush(): void {
    const text = tidy([...this.headingText.flatMap((heading) => [heading, '']), ...this.body].join('\n'));
    if (text !== '') this.sections.push({ text, position: this.position });
    this.body = [];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Markdown

/** Inline Markdown to plain text: links and images keep their text, emphasis and code markers go. */
function markdownInline(line: string): string {
  return line
    .replace(/!\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/!\[([^\]]*)\]\[[^\]]*\]/g, '$1')
    .replace(/\[([^\]]+)\]\((?:[^()]|\([^)]*\))*\)/g, '$1')
    .replace(/\[([^\]]+)\]\[[^\]]*\]/g, '$1')
    .replace(/<((?:https?|mailto):[^>\s]+)>/g, '$1')
    .replace(/(\*\*|__)(?=\S)([^\n]*?\S)\1/g, '$2')
    .replace(/(^|[^\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])/g, '$1$2')
    .replace(/(^|[^\w])_(?=\S)([^_\n]*?\S)_(?!\w)/g, '$1$2')
    .replace(/~~(?=\S)([^\n]*?\S)~~/g, '$1')
    .replace(/`+([^`\n]+?)`+/g, '$1');
}

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const ATX = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const SETEXT = /^ {0,3}(=+|-+)[ \t]*$/;
const TABLE_SEPARATOR = /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/;
const LINK_DEFINITION = /^ {0,3}\[[^\]]+\]:\s*\S+/;
const THEMATIC_BREAK = /^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$/;

function markdownSections(source: string): TextSection[] {
  let text = source.replace(/<!--[\s\S]*?-->/g, '');
  // YAML front matter.
  text = text.replace(/^---\n[\s\S]*?\n(---|\.\.\.)\n/, '');
  const lines = text.split('\n');
  const builder = new SectionBuilder();
  let fence: string | undefined;
  /** The previous line, still to be emitted (it may turn out to be a setext heading). */
  let pending: string | undefined;
  const emit = (): void => {
    if (pending !== undefined) builder.line(pending);
    pending = undefined;
  };
  for (const raw of lines) {
    if (fence !== undefined) {
      if (raw.trimStart().startsWith(fence)) fence = undefined;
      else builder.line(raw);
      continue;
    }
    const fenceMatch = FENCE.exec(raw);
    if (fenceMatch?.[1] !== undefined) {
      emit();
      fence = fenceMatch[1];
      continue;
    }
    const setext = SETEXT.exec(raw);
    if (setext !== null && pending !== undefined && pending.trim() !== '') {
      builder.heading(pending);
      pending = undefined;
      continue;
    }
    const atx = ATX.exec(raw);
    if (atx !== null) {
      emit();
      builder.heading(markdownInline(atx[2] ?? ''));
      continue;
    }
    if (THEMATIC_BREAK.test(raw) || LINK_DEFINITION.test(raw) || TABLE_SEPARATOR.test(raw)) {
      emit();
      continue;
    }
    emit();
    let line = markdownInline(raw);
    if (/^\s*\|.*\|\s*$/.test(line)) line = line.trim().replace(/^\|\s*/, '').replace(/\s*\|$/, '');
    pending = line;
  }
  emit();
  return builder.finish();
}

// ---------------------------------------------------------------------------------------------------------------
// HTML

const HEADING_START = '\u0001';
const HEADING_END = '\u0002';
const HEADING_MARKED = new RegExp(`${HEADING_START}([\\s\\S]*?)${HEADING_END}`);

const headingFormatter: FormatCallback = (elem, walk, builder) => {
  builder.openBlock({ leadingLineBreaks: 2 });
  builder.addLiteral(HEADING_START);
  walk(elem.children, builder);
  builder.addLiteral(HEADING_END);
  builder.closeBlock({ trailingLineBreaks: 2 });
};

/** A table row on one line, cells joined by ` | `. */
const rowFormatter: FormatCallback = (elem, walk, builder) => {
  builder.openBlock({ leadingLineBreaks: 1 });
  let first = true;
  for (const cell of elem.children) {
    if (cell.type !== 'tag' || (cell.name !== 'td' && cell.name !== 'th')) continue;
    if (!first) builder.addInline(' | ');
    first = false;
    walk(cell.children, builder);
  }
  builder.closeBlock({ trailingLineBreaks: 1 });
};

/** Whether a node sits inside a table cell (its paragraphs then stay on the row's line). */
function inCell(elem: DomNode): boolean {
  for (let node = elem.parent; node !== undefined && node !== null; node = node.parent) {
    if (node.type === 'tag' && (node.name === 'td' || node.name === 'th')) return true;
  }
  return false;
}

/** A paragraph: a block of its own, except inside a table cell (Word wraps every cell's text in one). */
const paragraphFormatter: FormatCallback = (elem, walk, builder) => {
  if (inCell(elem)) {
    builder.addInline(' ');
    walk(elem.children, builder);
    builder.addInline(' ');
    return;
  }
  builder.openBlock({ leadingLineBreaks: 2 });
  walk(elem.children, builder);
  builder.closeBlock({ trailingLineBreaks: 2 });
};

const HTML_OPTIONS: HtmlToTextOptions = {
  wordwrap: false,
  formatters: { heading: headingFormatter, row: rowFormatter, paragraph: paragraphFormatter },
  limits: { maxInputLength: 64 * 1024 * 1024, maxDepth: 256 },
  selectors: [
    ...['h1', 'h2', 'h3', 'h4', 'h5', 'h6'].map((selector) => ({ selector, format: 'heading' })),
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    { selector: 'table', format: 'block' },
    { selector: 'tr', format: 'row' },
    { selector: 'p', format: 'paragraph' },
    ...['script', 'style', 'template', 'noscript', 'nav', 'svg', 'iframe', 'object', 'button', 'select'].map((selector) => ({ selector, format: 'skip' })),
  ],
};

/** HTML to sections; also the docx path (mammoth's HTML). */
export function htmlSections(html: string): TextSection[] {
  const text = convert(html.replace(CONTROL, ''), HTML_OPTIONS);
  const parts = text.split(HEADING_MARKED);
  const builder = new SectionBuilder();
  parts.forEach((part, index) => {
    if (index % 2 === 1) builder.heading(part);
    else for (const line of part.split('\n')) builder.line(line);
  });
  return builder.finish();
}

// ---------------------------------------------------------------------------------------------------------------
// Word (.docx)

async function docxSections(bytes: Buffer): Promise<TextSection[]> {
  let html: string;
  try {
    const result = await mammoth.convertToHtml(
      { buffer: bytes },
      {
        // Images would come back as data: URIs; they carry no text.
        convertImage: mammoth.images.imgElement(() => Promise.resolve({ src: '' })),
        externalFileAccess: false,
      },
    );
    html = result.value;
  } catch {
    throw new ExtractionError('unreadable_document', 'the Word document could not be read (not a valid .docx file)');
  }
  return htmlSections(html);
}

// ---------------------------------------------------------------------------------------------------------------
// PDF

/** One run of text on a page, in viewport coordinates (y grows downwards, 1 unit = 1 pt at scale 1). */
interface Run {
  text: string;
  x: number;
  y: number;
  width: number;
  size: number;
}

interface Line {
  y: number;
  size: number;
  runs: Run[];
}

/** Runs whose baselines differ by at most this fraction of the font size are on one line. */
const SAME_LINE = 0.5;
/** A horizontal gap of at least this many font sizes separates two cells of a row (joined with ` | `). */
const CELL_GAP = 1.0;
const CELL_SEPARATOR = ' | ';
/** A gap of at least this many font sizes between two runs with no white space between them is a word break. */
const WORD_GAP = 0.12;
/** Baselines further apart than this many font sizes start a new paragraph (a blank line). */
const PARAGRAPH_GAP = 1.7;

/** The pdfjs directory, for its CMaps and standard font data (read from disk, never fetched). */
function pdfjsAsset(folder: string): string {
  const require = createRequire(import.meta.url);
  return `${join(dirname(require.resolve('pdfjs-dist/package.json')), folder)}/`;
}

/** Groups a page's runs into lines (top to bottom) and each line's runs left to right. */
export function groupLines(runs: Run[]): Line[] {
  const sorted = [...runs].sort((a, b) => a.y - b.y || a.x - b.x);
  const lines: Line[] = [];
  let current: Line | undefined;
  for (const run of sorted) {
    if (current !== undefined && Math.abs(run.y - current.y) <= SAME_LINE * Math.min(current.size, run.size)) {
      current.runs.push(run);
      current.size = Math.max(current.size, run.size);
    } else {
      current = { y: run.y, size: run.size, runs: [run] };
      lines.push(current);
    }
  }
  for (const line of lines) line.runs.sort((a, b) => a.x - b.x);
  return lines;
}

/** A line's text: cells far apart joined with ` | `, word gaps with a space. */
export function lineText(line: Line): string {
  let text = '';
  let previous: Run | undefined;
  for (const run of line.runs) {
    if (previous === undefined) {
      text = run.text;
    } else {
      const gap = run.x - (previous.x + previous.width);
      const size = Math.max(previous.size, run.size);
      if (gap >= CELL_GAP * size) text = `${text.trimEnd()}${CELL_SEPARATOR}${run.text.trimStart()}`;
      else if (gap >= WORD_GAP * size && !/\s$/.test(text) && !/^\s/.test(run.text)) text = `${text} ${run.text}`;
      else text += run.text;
    }
    previous = run;
  }
  return text.replace(/[ \t\u00a0]+/g, ' ').trim();
}

/**
 * A page's lines as text, with a blank line where the vertical gap says a new paragraph starts; consecutive table
 * rows (lines of several cells) stay together whatever their spacing.
 */
export function pageText(lines: Line[]): string {
  const out: string[] = [];
  let previous: { line: Line; cells: boolean } | undefined;
  for (const line of lines) {
    const text = lineText(line);
    if (text === '') continue;
    const cells = text.includes(CELL_SEPARATOR);
    if (previous !== undefined && !(cells && previous.cells) && line.y - previous.line.y > PARAGRAPH_GAP * Math.max(previous.line.size, line.size)) {
      out.push('');
    }
    out.push(text);
    previous = { line, cells };
  }
  return out.join('\n');
}

/** The product of two affine transforms [a, b, c, d, e, f] (as pdfjs' Util.transform: `m` applied after `n`). */
function multiply(m: readonly number[], n: readonly number[]): [number, number, number, number, number, number] {
  const [m0 = 1, m1 = 0, m2 = 0, m3 = 1, m4 = 0, m5 = 0] = m;
  const [n0 = 1, n1 = 0, n2 = 0, n3 = 1, n4 = 0, n5 = 0] = n;
  return [m0 * n0 + m2 * n1, m1 * n0 + m3 * n1, m0 * n2 + m2 * n3, m1 * n2 + m3 * n3, m0 * n4 + m2 * n5 + m4, m1 * n4 + m3 * n5 + m5];
}

/** The reason a pdfjs load failed, without anything from the document. */
function pdfReason(error: unknown): string {
  const name = error instanceof Error ? error.name : '';
  if (name === 'PasswordException') return 'the PDF is password protected';
  if (name === 'InvalidPDFException') return 'not a valid PDF file';
  return 'the PDF could not be read';
}

/**
 * pdfjs keeps every page it has loaded (parsed resources and all) until the document is destroyed; reopening the
 * document after this many pages bounds that, so a long PDF costs the memory of a window of pages, not all of them.
 */
const PAGES_PER_OPEN = 200;

type PdfJs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');

function openPdf(pdfjs: PdfJs, bytes: Buffer): ReturnType<PdfJs['getDocument']> {
  return pdfjs.getDocument({
    // A copy: pdfjs may take over (transfer) the buffer it is given.
    data: new Uint8Array(bytes),
    disableFontFace: true,
    isEvalSupported: false,
    useSystemFonts: false,
    enableXfa: false,
    isOffscreenCanvasSupported: false,
    stopAtErrors: false,
    cMapUrl: pdfjsAsset('cmaps'),
    cMapPacked: true,
    standardFontDataUrl: pdfjsAsset('standard_fonts'),
    verbosity: 0,
  });
}

async function pdfSections(bytes: Buffer, maxPages: number): Promise<TextSection[]> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  let task = openPdf(pdfjs, bytes);
  const load = (): Promise<Awaited<typeof task.promise>> =>
    task.promise.catch((error: unknown) => {
      throw new ExtractionError('unreadable_document', pdfReason(error));
    });
  try {
    let doc = await load();
    const pages = doc.numPages;
    if (pages > maxPages) throw new ExtractionError('document_too_large', `the PDF has ${pages} pages; at most ${maxPages} are read`);
    const sections: TextSection[] = [];
    for (let number = 1; number <= pages; number += 1) {
      if (number > 1 && (number - 1) % PAGES_PER_OPEN === 0) {
        await task.destroy();
        task = openPdf(pdfjs, bytes);
        doc = await load();
      }
      let text: string;
      try {
        const page = await doc.getPage(number);
        try {
          const viewport = page.getViewport({ scale: 1 });
          // Only this page's text items are held, and only until its lines are built.
          const content = await page.getTextContent();
          const runs: Run[] = [];
          for (const item of content.items) {
            if (!('str' in item) || item.str.trim() === '') continue;
            const [a, b, c, d, x, y] = multiply(viewport.transform, item.transform as number[]);
            const size = Math.hypot(c, d) || Math.hypot(a, b) || item.height || 1;
            runs.push({ text: item.str, x, y, width: item.width, size });
          }
          text = pageText(groupLines(runs));
        } finally {
          page.cleanup();
        }
      } catch (error) {
        if (error instanceof ExtractionError) throw error;
        throw new ExtractionError('unreadable_document', `page ${number} of the PDF could not be read`);
      }
      if (text !== '') sections.push({ text, position: `page ${number}` });
    }
    return sections;
  } finally {
    await task.destroy();
  }
}
