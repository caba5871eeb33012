import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import { objectSource } from '../../adapters/storage/index.js';
import { AppError, ConflictError } from '../../shared/errors.js';
import { OpenedContent, type FileRow } from '../../shared/files/index.js';
import { log } from '../../shared/log/index.js';
import type { ApiContext } from '../context.js';

/**
 * Up to this many bytes, every record of the answer is authenticated before the first byte is sent, so a tampered
 * file is refused whole. A larger answer is checked record by record as it streams (its size and header before
 * the first byte); a record that fails ends the connection without completing the response.
 */
export const VERIFY_BEFORE_SEND_BYTES = 32 * 1024 * 1024;

type Answer = { status: 200 | 206; start: number; end: number } | { status: 416 };

/** One byte range (RFC 9110), or the whole file; several ranges are answered with the whole file. */
function chooseRange(req: Request, size: number): Answer {
  const whole: Answer = { status: 200, start: 0, end: size - 1 };
  if (req.headers.range === undefined || size === 0) return whole;
  const ranges = req.range(size, { combine: true });
  if (ranges === -1) return { status: 416 };
  if (ranges === -2 || ranges === undefined || ranges.type !== 'bytes' || ranges.length !== 1) return whole;
  const [range] = ranges;
  return range === undefined ? whole : { status: 206, start: range.start, end: range.end };
}

function ensureStored(file: FileRow): void {
  if (file.status === 'pending') throw new ConflictError('file_not_ready', 'The file is still being stored; try again shortly');
  if (file.status === 'failed') throw new ConflictError('file_failed', 'The file could not be stored');
}

/** Streams a stored file's plaintext, decrypting only the records the answer needs. */
export async function sendContent(ctx: ApiContext, req: Request, res: Response, file: FileRow, name: string): Promise<void> {
  ensureStored(file);
  const size = Number(file.size);
  const answer = chooseRange(req, size);
  res.setHeader('Accept-Ranges', 'bytes');
  if (answer.status === 416) {
    res.setHeader('Content-Range', `bytes */${size}`);
    throw new AppError('range_not_satisfiable', 'The requested range is outside the file', { status: 416 });
  }
  const content = await OpenedContent.open(ctx.kernel.keys.payloadRing, file, objectSource(ctx.storage, file.storage_key));
  try {
    const length = size === 0 ? 0 : answer.end - answer.start + 1;
    if (size === 0) await content.verify(0, 0);
    else if (length <= VERIFY_BEFORE_SEND_BYTES) await content.verify(answer.start, answer.end);
    res.status(answer.status);
    if (answer.status === 206) res.setHeader('Content-Range', `bytes ${answer.start}-${answer.end}/${size}`);
    res.setHeader('Content-Type', file.content_type);
    res.setHeader('Content-Length', String(length));
    res.attachment(name);
    res.setHeader('Cache-Control', 'private, no-store');
    res.setHeader('Content-Security-Policy', "default-src 'none'; sandbox");
    res.setHeader('X-Content-Type-Options', 'nosniff');
    if (file.sha256 !== null) res.setHeader('ETag', `"${file.sha256}"`);
    if (req.method === 'HEAD' || length === 0) {
      res.end();
      return;
    }
    await pipeline(Readable.from(content.range(answer.start, answer.end)), res).catch((error: unknown) => {
      // Headers are out: the only honest signal left is a response that never completes.
      log.error('file download stopped', { requestId: req.requestId, fileId: file.id, error: error instanceof Error ? error.message : String(error) });
      res.destroy();
    });
  } finally {
    content.close();
  }
}
