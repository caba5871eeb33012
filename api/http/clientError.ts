import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/** What Node's HTTP parser refused, as our error body says it. */
function refusalOf(code: string | undefined): { status: number; error: string; message: string } {
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, error: 'headers_too_large', message: 'The request line and headers may have at most 16 KiB' };
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, error: 'request_timeout', message: 'The request took too long to arrive' };
  return { status: 400, error: 'bad_request', message: 'The request is not valid HTTP' };
}

/**
 * A request Node's HTTP parser refuses before any route sees it (a URL or headers over the size limit, a malformed
 * request line, a request that arrives too slowly) gets the same JSON error body and request id as every other
 * refusal, instead of Node's bare status line. The security headers of the app do not apply: no page is served.
 */
export function answerClientError(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const { status, error: code, message } = refusalOf(error.code);
  const requestId = randomUUID();
  const body = JSON.stringify({ error: code, message, requestId });
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `X-Request-Id: ${requestId}\r\n` +
      'X-Content-Type-Options: nosniff\r\n' +
      'Cache-Control: no-store\r\n' +
      'Connection: close\r\n\r\n' +
      body,
  );
}
