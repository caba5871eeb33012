import { connect } from 'node:net';
import { expect } from 'chai';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { dropRedisKeys } from '../helpers/redis.js';

interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Writes bytes to the API's port as they are and reads the answer until the server closes the connection. */
async function exchangeRaw(url: string, request: string): Promise<RawAnswer> {
  const { hostname, port } = new URL(url);
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.write(request);
  });
  const [head = '', body = ''] = text.split('\r\n\r\n', 2);
  const [statusLine = '', ...headerLines] = head.split('\r\n');
  const headers = new Map(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/**
 * What Node's HTTP parser refuses before any route runs still gets the API's JSON error body with its request id,
 * never Node's bare status line (found by the route fuzzer: a URL over 16 KiB came back as an empty 431).
 */
describe('perimeter: requests the HTTP parser refuses', function () {
  this.timeout(60_000);
  let database: TestDatabase;
  let api: TestApi;
  const prefix = uniqueQueuePrefix();

  before(async () => {
    database = await createTestDatabase();
    api = await startTestApi(apiTestConfig(database.url), prefix);
  });
  after(async () => {
    await api?.stop();
    await database?.destroy();
    if (api !== undefined) await dropRedisKeys(api.config.redisUrl, [`${prefix}:*`]);
  });

  const expectJsonRefusal = (answer: RawAnswer, status: number, error: string): void => {
    expect(answer.status).to.equal(status);
    expect(answer.headers.get('content-type')).to.match(/^application\/json/);
    expect(answer.headers.get('connection')).to.equal('close');
    const body = JSON.parse(answer.body) as { error: string; message: string; requestId: string };
    expect(body.error).to.equal(error);
    expect(body.message).to.be.a('string').and.not.equal('');
    expect(answer.headers.get('x-request-id')).to.equal(body.requestId);
  };

  it('a URL over the header limit: 431 headers_too_large as JSON', async () => {
    const answer = await exchangeRaw(api.url, `GET /api/files/${'a'.repeat(20_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    expectJsonRefusal(answer, 431, 'headers_too_large');
  });

  it('headers over the limit: 431 headers_too_large as JSON', async () => {
    const answer = await exchangeRaw(api.url, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ${'b'.repeat(20_000)}\r\n\r\n`);
    expectJsonRefusal(answer, 431, 'headers_too_large');
  });

  it('a request line that is not HTTP: 400 bad_request as JSON, and the server goes on answering', async () => {
    const answer = await exchangeRaw(api.url, 'THIS IS NOT HTTP\r\n\r\n');
    expectJsonRefusal(answer, 400, 'bad_request');
    const healthy = await fetch(`${api.url}/healthz`);
    await healthy.arrayBuffer();
    expect(healthy.status).to.equal(200);
  });
});
