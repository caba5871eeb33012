import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { createStorage, type ObjectStorage } from '../../adapters/storage/index.js';
import { storageKeyOf } from '../../shared/files/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, type TestApi } from '../helpers/api.js';
import { connectClient } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { download, elfExecutable, fileInfo, httpRequest, json, TINY_PNG, uploadFile, uploadStream, waitForStored } from '../helpers/files.js';
import { requireS3 } from '../helpers/s3.js';
import { makeTempDir } from '../helpers/process.js';

const CHUNK = 64 * 1024;
const MAX_UPLOAD = 2 * 1024 * 1024;
const TAG = 16;

async function readObject(storage: ObjectStorage, key: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of (await storage.get(key)) as AsyncIterable<Buffer>) parts.push(chunk);
  return Buffer.concat(parts);
}

/** Text bytes (so the type sniffer accepts them) of a given length, different every call. */
function textBytes(length: number): Buffer {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 \n';
  const random = randomBytes(length);
  const out = Buffer.alloc(length);
  for (let index = 0; index < length; index += 1) out[index] = alphabet.charCodeAt((random[index] ?? 0) % alphabet.length);
  return out;
}

function stagingFiles(dataDir: string): string[] {
  const root = join(dataDir, 'staging');
  try {
    return readdirSync(root, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
  } catch {
    return [];
  }
}

for (const backend of ['local', 's3'] as const) {
  describe(`files on ${backend} storage: upload, encryption worker, download`, function () {
    this.timeout(60_000);
    let database: TestDatabase;
    let api: TestApi;
    let workers: RunningWorkers;
    let storage: ObjectStorage;
    let owner: string;
    let sameTenantUser: string;
    let operator: string;
    let otherTenantUser: string;
    let tenantId: string;

    before(async function () {
      const env = backend === 's3' ? requireS3(this, 'files').env() : {};
      database = await createTestDatabase();
      const prefix = uniqueQueuePrefix();
      const config = apiTestConfig(database.url, { ...env, BOTSERVER_MAX_UPLOAD_SIZE: String(MAX_UPLOAD), LOG_LEVEL: process.env.LOG_LEVEL ?? "warn" });
      api = await startTestApi(config, prefix);
      workers = await startWorkers(config, 'files', { queuePrefix: prefix });
      storage = createStorage(config);
      const tenant = `files-${randomBytes(4).toString('hex')}`;
      const ownerUser = await createTestUser(config, { role: 'user', tenant });
      tenantId = ownerUser.tenantId;
      owner = (await loginTokens(api, ownerUser)).accessToken;
      sameTenantUser = (await loginTokens(api, await createTestUser(config, { role: 'user', tenant }))).accessToken;
      operator = (await loginTokens(api, await createTestUser(config, { role: 'operator', tenant }))).accessToken;
      otherTenantUser = (await loginTokens(api, await createTestUser(config, { role: 'admin', tenant: `${tenant}-other` }))).accessToken;
    });
    after(async () => {
      await workers?.shutdown();
      await storage?.close();
      await api?.stop();
      await database?.destroy();
    });

    async function stored(content: Buffer, name = 'notes.txt'): Promise<string> {
      const upload = await uploadFile(api.url, owner, name, content);
      expect(upload.status, upload.body.toString()).to.equal(202);
      const { id, status } = json(upload);
      expect(status).to.equal('pending');
      const info = await waitForStored(api.url, owner, String(id));
      expect(info.status).to.equal('stored');
      return String(id);
    }

    it('round-trips 0 B, 1 B, chunk − 1, chunk, chunk + 1 and several chunks', async () => {
      for (const size of [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]) {
        const content = textBytes(size);
        const id = await stored(content);
        const info = json(await fileInfo(api.url, owner, id));
        expect(info).to.include({ size, type: 'text/plain', name: 'notes.txt', source: 'upload' });
        const body = await download(api.url, owner, id);
        expect(body.status, `size ${size}`).to.equal(200);
        expect(body.body.equals(content), `size ${size}`).to.equal(true);
        expect(body.headers['content-disposition']).to.match(/^attachment; filename="?notes\.txt"?$/);
        expect(body.headers['x-content-type-options']).to.equal('nosniff');
        const object = await storage.head(storageKeyOf(tenantId, id));
        expect(object?.size).to.be.greaterThan(size);
      }
    });

    it('answers byte ranges from the records that hold them, and 416 outside the file', async () => {
      const content = textBytes(3 * CHUNK + 100);
      const id = await stored(content);
      for (const [start, end] of [[0, 0], [CHUNK - 1, CHUNK], [CHUNK + 5, 2 * CHUNK + 9], [3 * CHUNK, 3 * CHUNK + 99], [10, 3 * CHUNK + 99]] as const) {
        const part = await download(api.url, owner, id, { range: `bytes=${start}-${end}` });
        expect(part.status).to.equal(206);
        expect(part.headers['content-range']).to.equal(`bytes ${start}-${end}/${content.length}`);
        expect(part.body.equals(content.subarray(start, end + 1))).to.equal(true);
      }
      const suffix = await download(api.url, owner, id, { range: 'bytes=-50' });
      expect(suffix.body.equals(content.subarray(content.length - 50))).to.equal(true);
      const outside = await download(api.url, owner, id, { range: `bytes=${content.length}-` });
      expect(outside.status).to.equal(416);
      expect(outside.headers['content-range']).to.equal(`bytes */${content.length}`);
    });

    it('keeps no plaintext canary in the stored object (plain, hex or base64)', async () => {
      const canary = `CANARY-${randomBytes(12).toString('hex')}`;
      const content = Buffer.from(`${canary}\n`.repeat(5000));
      const id = await stored(content);
      const object = await readObject(storage, storageKeyOf(tenantId, id));
      for (const form of [canary, Buffer.from(canary).toString('hex'), Buffer.from(canary).toString('base64').slice(0, 24)]) {
        expect(object.includes(Buffer.from(form)), form).to.equal(false);
        expect(object.toString('latin1').toLowerCase().includes(form.toLowerCase()), form).to.equal(false);
      }
    });

    it('refuses a flipped bit, a dropped chunk, a reordered chunk and a truncated object, sending none of it', async () => {
      const content = textBytes(4 * CHUNK + 10);
      const marker = content.subarray(CHUNK * 2, CHUNK * 2 + 64);
      const recordSize = CHUNK + TAG;
      // Each tampering, and a byte range whose records it damages (a range elsewhere may rightly still be served).
      const tamperings: Record<string, { tamper: (object: Buffer, header: number) => Buffer; range: string }> = {
        'flipped bit': {
          tamper: (object, header) => {
            const copy = Buffer.from(object);
            copy[header + 3 * recordSize + 7] = (copy[header + 3 * recordSize + 7] ?? 0) ^ 0x01;
            return copy;
          },
          range: `bytes=${3 * CHUNK}-${3 * CHUNK + 10}`,
        },
        'dropped chunk': { tamper: (object, header) => Buffer.concat([object.subarray(0, header + recordSize), object.subarray(header + 2 * recordSize)]), range: 'bytes=0-10' },
        'reordered chunks': {
          tamper: (object, header) =>
            Buffer.concat([object.subarray(0, header), object.subarray(header + recordSize, header + 2 * recordSize), object.subarray(header, header + recordSize), object.subarray(header + 2 * recordSize)]),
          range: 'bytes=0-10',
        },
        truncated: { tamper: (object) => object.subarray(0, object.length - 100), range: 'bytes=0-10' },
        'cut at a record boundary': { tamper: (object, header) => object.subarray(0, header + 2 * recordSize), range: 'bytes=0-10' },
      };
      for (const [name, { tamper, range }] of Object.entries(tamperings)) {
        const id = await stored(content);
        const key = storageKeyOf(tenantId, id);
        const object = await readObject(storage, key);
        const header = object.length - (content.length + 5 * TAG);
        const tampered = tamper(object, header);
        const source = join(makeTempDir('botserver-tampered-'), 'object');
        writeFileSync(source, tampered);
        await storage.putFile(key, source, tampered.length);
        const answer = await download(api.url, owner, id);
        expect(answer.status, name).to.equal(500);
        expect(json(answer).error, name).to.equal('file_integrity');
        expect(answer.body.includes(marker), name).to.equal(false);
        const ranged = await download(api.url, owner, id, { range });
        expect(ranged.status, `${name} (${range})`).to.equal(500);
      }
    });

    it('gives 404 on every route to another tenant and to a non-owner, and no file route to a guest', async () => {
      const id = await stored(Buffer.from('private notes\n'));
      for (const token of [sameTenantUser, otherTenantUser]) {
        expect((await fileInfo(api.url, token, id)).status).to.equal(404);
        expect((await download(api.url, token, id)).status).to.equal(404);
        expect((await httpRequest(`${api.url}/api/files/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })).status).to.equal(404);
      }
      expect((await fileInfo(api.url, operator, id)).status, 'staff reach only files attached to conversations').to.equal(404);
      expect((await fileInfo(api.url, owner, randomUUID())).status).to.equal(404);
      expect((await fileInfo(api.url, owner, 'not-a-uuid')).status).to.equal(404);

      const admin = (await loginTokens(api, await createTestUser(api.config, { role: 'admin', tenant: `guest-${randomBytes(3).toString('hex')}` }))).accessToken;
      const bot = await postJson(`${api.url}/api/bots`, { name: 'Public', public: true }, { authorization: `Bearer ${admin}` });
      const guest = await postJson(`${api.url}/api/bots/${String(bot.body.id)}/guest-token`, {});
      const guestToken = String(guest.body.token);
      expect((await fileInfo(api.url, guestToken, id)).status).to.equal(404);
      expect((await download(api.url, guestToken, id)).status).to.equal(404);
      expect((await uploadFile(api.url, guestToken, 'a.txt', Buffer.from('hello'))).status).to.equal(403);
      expect((await fileInfo(api.url, owner, id)).status, 'still there for its owner').to.equal(200);
    });

    it('answers 413 to an upload over the limit and leaves no temp file', async () => {
      const before = stagingFiles(api.config.dataDir).length;
      const exactly = await uploadFile(api.url, owner, 'limit.txt', textBytes(MAX_UPLOAD));
      expect(exactly.status, 'exactly the limit is accepted').to.equal(202);
      await waitForStored(api.url, owner, String(json(exactly).id));
      const declared = await uploadFile(api.url, owner, 'big.txt', textBytes(MAX_UPLOAD + 1));
      expect(declared.status).to.equal(413);
      expect(json(declared)).to.include({ error: 'payload_too_large', field: 'file' });
      // Streamed without Content-Length: refused while streaming.
      const chunks = function* (): Generator<Buffer> {
        for (let sent = 0; sent < 4 * MAX_UPLOAD; sent += CHUNK) yield textBytes(CHUNK);
      };
      const streamed = await uploadStream(api.url, owner, 'big.txt', chunks()).catch((error: unknown) => error as Error);
      if (!(streamed instanceof Error)) expect(streamed.status).to.equal(413);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(stagingFiles(api.config.dataDir).length).to.equal(before);
    });

    it('sanitises traversal, NUL and very long names', async () => {
      const traversal = await stored(Buffer.from('x\n'), '../../etc/passwd');
      expect(json(await fileInfo(api.url, owner, traversal)).name).to.equal('passwd');
      const rawNul = await uploadFile(api.url, owner, 'evil\u0000name.txt', Buffer.from('x\n'));
      expect(rawNul.status, 'a raw NUL in the part header is refused').to.equal(400);
      expect(json(rawNul).field).to.equal('file');
      const encodedNul = await uploadFile(api.url, owner, "x.txt\"; filename*=utf-8''evil%00name%2F..%2F.txt; x=\"", Buffer.from('x\n'));
      expect(encodedNul.status, encodedNul.body.toString()).to.equal(202);
      const encodedId = String(json(encodedNul).id);
      await waitForStored(api.url, owner, encodedId);
      expect(json(await fileInfo(api.url, owner, encodedId)).name, 'an encoded NUL and separators are removed').to.equal('txt');
      const long = await stored(Buffer.from('x\n'), `${'a'.repeat(400)}.txt`);
      const name = String(json(await fileInfo(api.url, owner, long)).name);
      expect(Buffer.byteLength(name)).to.be.at.most(255);
      expect(name.endsWith('.txt')).to.equal(true);
    });

    it('refuses with 415 a type outside the allowlist, whatever its name says, and accepts an image', async () => {
      const refused = await uploadFile(api.url, owner, 'harmless.txt', elfExecutable());
      expect(refused.status).to.equal(415);
      expect(json(refused)).to.include({ error: 'unsupported_file_type', field: 'file' });
      const image = await stored(TINY_PNG, 'pixel.txt');
      expect(json(await fileInfo(api.url, owner, image)).type).to.equal('image/png');
      const wrongField = await uploadFile(api.url, owner, 'a.txt', Buffer.from('hi'), 'document');
      expect(wrongField.status).to.equal(400);
      expect(json(wrongField).field).to.equal('file');
    });

    it('DELETE removes the row and every stored version', async () => {
      const id = await stored(Buffer.from('to be erased\n'));
      const deleted = await httpRequest(`${api.url}/api/files/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${owner}` } });
      expect(deleted.status).to.equal(204);
      expect((await fileInfo(api.url, owner, id)).status).to.equal(404);
      expect(await storage.head(storageKeyOf(tenantId, id))).to.equal(undefined);
    });

    it('carries attachments on chat messages, for the participant and the tenant staff only', async () => {
      const bot = await postJson(`${api.url}/api/bots`, { name: 'Files bot' }, { authorization: `Bearer ${operator}` });
      expect(bot.status).to.equal(201);
      const conversation = await postJson(`${api.url}/api/bots/${String(bot.body.id)}/conversations`, {}, { authorization: `Bearer ${owner}` });
      const conversationId = String(conversation.body.id);
      const image = await stored(TINY_PNG, 'pixel.png');
      const chat = await connectClient(api.url, { token: owner });
      expect((await chat.join(conversationId)).ok).to.equal(true);
      const sent = await chat.emitAck('message:send', { conversationId, text: '', clientMessageId: 'att-1', attachments: [image] });
      expect(sent.ok).to.equal(true);
      const event = await chat.waitForMessage((message) => message.role === 'user' && message.attachments !== undefined);
      expect(event.attachments).to.deep.equal([{ id: image, name: 'pixel.png', size: TINY_PNG.length, type: 'image/png' }]);
      chat.close();

      const listed = json(await httpRequest(`${api.url}/api/conversations/${conversationId}/messages`, { headers: { authorization: `Bearer ${operator}` } }));
      const messages = listed.messages as Array<{ attachments?: unknown[] }>;
      expect(messages.some((message) => message.attachments?.length === 1)).to.equal(true);
      const viaStaff = await download(api.url, operator, image);
      expect(viaStaff.status).to.equal(200);
      expect(viaStaff.body.equals(TINY_PNG)).to.equal(true);
      expect((await download(api.url, sameTenantUser, image)).status).to.equal(404);

      const foreign = await stored(Buffer.from('mine\n'));
      const stranger = await connectClient(api.url, { token: sameTenantUser });
      const strangerConversation = await postJson(`${api.url}/api/bots/${String(bot.body.id)}/conversations`, {}, { authorization: `Bearer ${sameTenantUser}` });
      const refused = await stranger.emitAck('message:send', { conversationId: String(strangerConversation.body.id), text: 'look', clientMessageId: 'att-2', attachments: [foreign] });
      expect(refused).to.deep.equal({ ok: false, error: 'not_found' });
      stranger.close();
    });
  });
}
