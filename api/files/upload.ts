import { randomUUID } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import busboy from 'busboy';
import type { Request, Response } from 'express';
import { AppError, ValidationError } from '../../shared/errors.js';
import { SNIFF_BYTES, sniffType, typeAllowed, type StagedContent, type StagingWriter } from '../../shared/files/index.js';
import { safeFileName } from '../../shared/paths.js';
import type { ApiContext } from '../context.js';
import { noFieldsSchema, parseInput } from '../http/validate.js';

/** Room for the multipart boundaries and part headers around the file itself. */
const MULTIPART_OVERHEAD = 64 * 1024;

export interface ReceivedUpload {
  fileId: string;
  name: string;
  size: number;
  contentType: string;
  /** The staged, already encrypted content: its wrapped data key, record size and the plaintext's SHA-256. */
  staged: StagedContent;
}

export function tooLarge(max: number): AppError {
  return new AppError('payload_too_large', `A file may have at most ${max} bytes (BOTSERVER_MAX_UPLOAD_SIZE)`, { status: 413, field: 'file' });
}

/**
 * Counts the bytes as they stream and, once the first SNIFF_BYTES are in (or the file ended sooner), decides the
 * real type from them: a type outside the allowlist stops the upload there with 415.
 */
class TypeGate extends Transform {
  readonly #allowed: readonly string[];
  readonly #name: string;
  #sample: Buffer[] = [];
  #sampled = 0;
  #type: string | undefined;
  bytes = 0;

  constructor(allowed: readonly string[], name: string) {
    super();
    this.#allowed = allowed;
    this.#name = name;
  }

  get type(): string | undefined {
    return this.#type;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.#type !== undefined) return callback(null, chunk);
    this.#sample.push(chunk);
    this.#sampled += chunk.length;
    if (this.#sampled < SNIFF_BYTES) return callback();
    this.#decide().then(() => callback(), callback);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#type !== undefined) return callback();
    this.#decide().then(() => callback(), callback);
  }

  async #decide(): Promise<void> {
    const held = Buffer.concat(this.#sample);
    this.#sample = [];
    const type = await sniffType(held.subarray(0, SNIFF_BYTES), this.#name);
    if (!typeAllowed(type, this.#allowed)) {
      throw new AppError('unsupported_file_type', `Files of type ${type} are not accepted`, { status: 415, field: 'file' });
    }
    this.#type = type;
    this.push(held);
  }
}

/** After an early answer (413, 415), the rest of the body is not read: the connection ends once the answer is out. */
export function stopReading(req: Request, res: Response): void {
  req.unpipe();
  res.setHeader('Connection', 'close');
  res.on('finish', () => {
    if (!req.complete) setTimeout(() => req.socket.destroy(), 1000).unref();
  });
}

/**
 * Streams one multipart upload (field `file`) into the staging folder, encrypted as it arrives under the file's own
 * data key, checking size and type on the way. Nothing of a refused or broken upload remains on disk.
 */
export async function receiveUpload(ctx: ApiContext, req: Request, res: Response, tenantId: string): Promise<ReceivedUpload> {
  const max = ctx.kernel.config.maxUploadSize;
  if (!req.is('multipart/form-data')) {
    // A JSON body is read by the body parser like on every route: its fields are refused by name, as everywhere.
    if (typeof req.body === 'object' && req.body !== null) parseInput(noFieldsSchema, req.body);
    throw new AppError('unsupported_media_type', 'Upload a file as multipart/form-data (field "file")', { status: 415 });
  }
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (Number.isFinite(declared) && declared > max + MULTIPART_OVERHEAD) {
    stopReading(req, res);
    throw tooLarge(max);
  }
  let parser: busboy.Busboy;
  try {
    // busboy reports its limit on reaching it: one byte more than allowed is the first one refused.
    parser = busboy({ headers: req.headers, defParamCharset: 'utf8', limits: { files: 1, fileSize: max + 1, fields: 0, parts: 2, headerPairs: 20 } });
  } catch {
    throw new ValidationError('The multipart body has no valid boundary', 'file');
  }
  const fileId = randomUUID();
  let writer: StagingWriter | undefined;

  const received = new Promise<Omit<ReceivedUpload, 'staged'>>((resolve, reject) => {
    let settled = false;
    let sawFile = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      reject(error instanceof Error ? error : new ValidationError('The upload could not be read', 'file'));
    };
    parser.on('file', (field, stream, info) => {
      if (field !== 'file' || sawFile) {
        stream.resume();
        fail(new ValidationError('Send exactly one file, in the field "file"', 'file'));
        return;
      }
      sawFile = true;
      const name = safeFileName(info.filename);
      const gate = new TypeGate(ctx.kernel.config.uploadTypes, name);
      stream.on('limit', () => fail(tooLarge(max)));
      stream.on('error', fail);
      gate.on('error', fail);
      ctx.staging
        .writer(ctx.kernel.keys.payloadRing, tenantId, fileId)
        .then(async (opened) => {
          writer = opened;
          if (settled) {
            await opened.abort(); // the upload failed while its staging file was being opened
            return;
          }
          opened.done.catch(fail);
          stream.pipe(gate).pipe(opened.input);
          await opened.done;
          if (settled) return;
          if (gate.type === undefined) return fail(new ValidationError('The upload could not be read', 'file'));
          settled = true;
          resolve({ fileId, name, size: gate.bytes, contentType: gate.type });
        })
        .catch(fail);
    });
    parser.on('fieldsLimit', () => fail(new ValidationError('Only the field "file" is accepted', 'file')));
    parser.on('partsLimit', () => fail(new ValidationError('Send exactly one file, in the field "file"', 'file')));
    parser.on('filesLimit', () => fail(new ValidationError('Send exactly one file, in the field "file"', 'file')));
    parser.on('error', () => fail(new ValidationError('The multipart body is malformed', 'file')));
    parser.on('close', () => {
      if (!sawFile) fail(new ValidationError('The field "file" is missing', 'file'));
    });
    req.on('aborted', () => fail(new AppError('upload_aborted', 'The upload was interrupted', { status: 400 })));
    req.pipe(parser);
  });

  try {
    const upload = await received;
    if (writer === undefined) throw new ValidationError('The upload could not be read', 'file');
    return { ...upload, staged: await writer.commit() };
  } catch (error) {
    if (!req.complete) stopReading(req, res);
    await writer?.abort();
    throw error;
  }
}
