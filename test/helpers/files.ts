import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { Readable } from 'node:stream';
import { waitFor } from './process.js';

/**
 * File pipeline test helpers: multipart uploads (from a Buffer or streamed from a generator), metadata polling and
 * downloads, over plain HTTP to a test API.
 */

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export function json(result: HttpResult): Record<string, unknown> {
  return JSON.parse(result.body.toString('utf8')) as Record<string, unknown>;
}

/** The multipart envelope around one file field; the file's bytes go between `head` and `tail`. */
export function multipartFrame(fileName: string, field = 'file', contentType = 'application/octet-stream'): { boundary: string; head: Buffer; tail: Buffer } {
  const boundary = `----botserver-test-${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${fileName}"\r\nContent-Type: ${contentType}\r\n\r\n`, 'utf8');
  return { boundary, head, tail: Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8') };
}

/** Sends a request and collects the answer; an upload body may be a stream (sent chunked) or bytes. */
export function httpRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer | Readable; timeoutMs?: number } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, timeout: options.timeoutMs ?? 120_000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    const body = options.body;
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      body.on('error', (error) => req.destroy(error));
      body.pipe(req);
    }
  });
}

/** Uploads `content` as the field `file` named `fileName`. */
export async function uploadFile(apiUrl: string, token: string, fileName: string, content: Buffer, field = 'file'): Promise<HttpResult> {
  const frame = multipartFrame(fileName, field);
  const body = Buffer.concat([frame.head, content, frame.tail]);
  return httpRequest(`${apiUrl}/api/files`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${frame.boundary}`, 'content-length': String(body.length) },
    body,
  });
}

/** Uploads a streamed body (chunked, no Content-Length) made of `chunks`. */
export async function uploadStream(apiUrl: string, token: string, fileName: string, chunks: AsyncIterable<Buffer> | Iterable<Buffer>): Promise<HttpResult> {
  const frame = multipartFrame(fileName);
  async function* framed(): AsyncGenerator<Buffer> {
    yield frame.head;
    for await (const chunk of chunks) yield chunk;
    yield frame.tail;
  }
  return httpRequest(`${apiUrl}/api/files`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${frame.boundary}` },
    body: Readable.from(framed()),
  });
}

export async function fileInfo(apiUrl: string, token: string, id: string): Promise<HttpResult> {
  return httpRequest(`${apiUrl}/api/files/${id}`, { headers: { authorization: `Bearer ${token}` } });
}

/** Waits until the file leaves `pending`; returns its metadata. */
export async function waitForStored(apiUrl: string, token: string, id: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
  return waitFor(async () => {
    const info = json(await fileInfo(apiUrl, token, id));
    return info.status === 'pending' ? undefined : info;
  }, timeoutMs, 100);
}

export async function download(apiUrl: string, token: string, id: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return httpRequest(`${apiUrl}/api/files/${id}/content`, { headers: { authorization: `Bearer ${token}`, ...headers } });
}

/** A minimal valid PNG (1×1, transparent). */
export const TINY_PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==', 'base64');

/** The first bytes of an ELF executable (x86-64), enough for type sniffing. */
export function elfExecutable(): Buffer {
  const header = Buffer.alloc(4096);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x01, 0x00]).copy(header, 0);
  header.writeUInt16LE(2, 16); // e_type: executable
  header.writeUInt16LE(0x3e, 18); // e_machine: x86-64
  return header;
}

/** Downloads a file and returns the SHA-256 of its body, streamed (large files are never held in memory). */
export function downloadSha256(apiUrl: string, token: string, id: string): Promise<{ status: number; sha256: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request(`${apiUrl}/api/files/${id}/content`, { headers: { authorization: `Bearer ${token}` }, timeout: 600_000 }, (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, sha256: hash.digest('hex'), bytes }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('download timed out')));
    req.on('error', reject);
    req.end();
  });
}
