import path from 'node:path';
import { expect } from 'chai';
import fc from 'fast-check';
import { ValidationError } from '../../shared/errors.js';
import { MAX_FILE_NAME_BYTES, safeFileName, safeJoin } from '../../shared/paths.js';

const ROOT = '/srv/botserver/files';

/** Runs safeJoin; a refusal must be the typed `invalid_path` error, anything else thrown fails the test. */
function tryJoin(root: string, segments: string[]): { ok: true; path: string } | { ok: false } {
  try {
    return { ok: true, path: safeJoin(root, ...segments) };
  } catch (error) {
    expect(error).to.be.instanceOf(ValidationError);
    expect((error as ValidationError).code).to.equal('invalid_path');
    expect((error as ValidationError).status).to.equal(400);
    return { ok: false };
  }
}

function isStrictlyInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative !== '' && relative.split(path.sep)[0] !== '..' && !path.isAbsolute(relative) && candidate.startsWith(`${root}${path.sep}`);
}

/** Pieces that make traversal attempts in every spelling an attacker has tried. */
const traversalPiece = fc.constantFrom('..', '.', '/', '\\', '%2e', '%2E', '%2f', '%2F', '%5c', '%252e', '%252f', '%25', '%00', '\0', 'a', 'b', 'etc', 'passwd', 'C:', '~', ' ', '\n', '%c0%ae', '\u2025', '\uff0e');
const traversalSegment = fc.array(traversalPiece, { minLength: 1, maxLength: 8 }).map((pieces) => pieces.join(''));
const anySegment = fc.oneof(traversalSegment, fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme-ascii', maxLength: 40 }));
const safeSegment = fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/);

describe('paths: safeJoin keeps storage keys inside their root', function () {
  it('for any segments, the result is strictly inside the root or it throws invalid_path', () => {
    fc.assert(
      fc.property(fc.array(anySegment, { maxLength: 5 }), (segments) => {
        const result = tryJoin(ROOT, segments);
        if (result.ok) expect(isStrictlyInside(ROOT, result.path), `${JSON.stringify(segments)} -> ${result.path}`).to.equal(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('for any traversal spelling, a result never contains a decoded "..", a NUL or a backslash', () => {
    fc.assert(
      fc.property(fc.array(traversalSegment, { minLength: 1, maxLength: 4 }), (segments) => {
        const result = tryJoin(ROOT, segments);
        if (!result.ok) return;
        const tail = result.path.slice(ROOT.length);
        let decoded = tail;
        for (let i = 0; i < 5; i += 1) decoded = decodeURIComponent(decoded);
        expect(decoded.split('/')).not.to.include('..');
        expect(decoded).not.to.include('\0');
        expect(decoded).not.to.include('\\');
      }),
      { numRuns: 2000 },
    );
  });

  it('joins well-formed keys exactly like path.join', () => {
    fc.assert(
      fc.property(fc.array(safeSegment, { minLength: 1, maxLength: 5 }), (segments) => {
        expect(safeJoin(ROOT, ...segments)).to.equal(path.join(ROOT, ...segments));
      }),
    );
  });

  it('refuses the classic traversal and injection forms', () => {
    const attacks = [
      ['..'],
      ['../etc/passwd'],
      ['a', '..', '..', 'etc'],
      ['a/../../b'],
      ['%2e%2e'],
      ['%2e%2e%2fetc'],
      ['..%2f..%2fetc'],
      ['%252e%252e%252f'],
      ['%25252e%25252e'],
      ['%2525252e%2525252e'],
      ['/etc/passwd'],
      ['%2fetc%2fpasswd'],
      ['a\\..\\..\\b'],
      ['%5c..%5c'],
      ['C:\\Windows'],
      ['C:'],
      ['file\0.txt'],
      ['file%00.txt'],
      ['line\nbreak'],
      ['%'],
      ['%zz'],
      [''],
      ['.'],
      ['a/..'],
      [],
      ['x'.repeat(256)],
    ];
    for (const segments of attacks) {
      expect(tryJoin(ROOT, segments).ok, JSON.stringify(segments)).to.equal(false);
    }
  });

  it('checks the prefix with a separator: a sibling folder whose name starts like the root is outside', () => {
    // Only `..` could reach a sibling, and it is refused; the prefix check is the second wall behind it.
    expect(tryJoin('/data/files', ['..', 'files-evil', 'x']).ok).to.equal(false);
    expect(safeJoin('/data/files/', 'a')).to.equal('/data/files/a');
    expect(safeJoin('/', 'a')).to.equal('/a');
  });

  it('accepts sub-folders and harmless dots inside a segment', () => {
    expect(safeJoin(ROOT, 'tenant/abc', 'file.v2.bin')).to.equal(`${ROOT}/tenant/abc/file.v2.bin`);
    expect(safeJoin(ROOT, 'a/./b')).to.equal(`${ROOT}/a/b`);
    expect(safeJoin(ROOT, '...')).to.equal(`${ROOT}/...`);
    expect(safeJoin('relative/root', 'x')).to.equal(path.resolve('relative/root', 'x'));
  });

  it('refuses a root that is not a path', () => {
    expect(tryJoin('', ['a']).ok).to.equal(false);
    expect(tryJoin('/srv\0/x', ['a']).ok).to.equal(false);
  });
});

/** Any UTF-16 string, lone surrogates included. */
const anyUtf16 = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)), maxLength: 400 });
const anyName = fc.oneof(anyUtf16, fc.string({ unit: 'binary', maxLength: 400 }), traversalSegment, fc.string({ unit: 'grapheme', minLength: 200, maxLength: 600 }));
const CONTROL = /\p{Cc}/u;
const LONE_SURROGATE = /[\ud800-\udfff]/u;

describe('paths: safeFileName makes any display name safe', function () {
  it('for any name: no /, \\, NUL or control characters, no lone surrogate, at most 255 UTF-8 bytes, never empty or a dot name', () => {
    fc.assert(
      fc.property(anyName, (name) => {
        const safe = safeFileName(name);
        expect(safe).to.be.a('string').and.not.equal('');
        expect(safe).not.to.match(/[/\\\0]/);
        expect(CONTROL.test(safe), JSON.stringify(safe)).to.equal(false);
        expect(LONE_SURROGATE.test(safe), JSON.stringify(safe)).to.equal(false);
        expect(Buffer.byteLength(safe, 'utf8')).to.be.at.most(MAX_FILE_NAME_BYTES);
        expect(safe.startsWith('.')).to.equal(false);
        expect(['.', '..']).not.to.include(safe);
      }),
      { numRuns: 3000 },
    );
  });

  it('is idempotent: a safe name stays as it is', () => {
    fc.assert(
      fc.property(anyName, (name) => {
        const once = safeFileName(name);
        expect(safeFileName(once)).to.equal(once);
      }),
      { numRuns: 2000 },
    );
  });

  it('keeps only the last path component, whichever separator the client used', () => {
    expect(safeFileName('../../etc/passwd')).to.equal('passwd');
    expect(safeFileName('C:\\Users\\ann\\report.pdf')).to.equal('report.pdf');
    expect(safeFileName('/abs/path/')).to.equal('path');
    expect(safeFileName('dir\\..\\..\\x.txt')).to.equal('x.txt');
  });

  it('removes control and invisible characters and replaces reserved ones', () => {
    expect(safeFileName('a\u0000b\u0007c\u009f.txt')).to.equal('abc.txt');
    expect(safeFileName('invoice\u202efdp.exe')).to.equal('invoicefdp.exe');
    expect(safeFileName('what?<why>:"|*.txt')).to.equal('what__why_____.txt');
    expect(safeFileName('line\nbreak.txt')).to.equal('linebreak.txt');
  });

  it('never returns an empty, hidden or dot-only name', () => {
    for (const name of ['', '.', '..', '...', '/', '\\', '\u0000', '   ', ' . ', '.hidden', undefined, 42, null]) {
      const safe = safeFileName(name);
      expect(safe, JSON.stringify(name)).to.not.equal('');
      expect(safe.startsWith('.'), JSON.stringify(name)).to.equal(false);
    }
    expect(safeFileName('.hidden')).to.equal('hidden');
    expect(safeFileName('..')).to.equal('file');
  });

  it('cuts long names to 255 UTF-8 bytes on a character boundary and keeps a short extension', () => {
    const long = `${'é'.repeat(300)}.pdf`;
    const safe = safeFileName(long);
    expect(Buffer.byteLength(safe, 'utf8')).to.be.at.most(MAX_FILE_NAME_BYTES);
    expect(safe.endsWith('.pdf')).to.equal(true);
    expect(safe.startsWith('éé')).to.equal(true);
    const emoji = safeFileName('😀'.repeat(100));
    expect(Buffer.byteLength(emoji, 'utf8')).to.equal(252);
    expect(LONE_SURROGATE.test(emoji)).to.equal(false);
  });
});
