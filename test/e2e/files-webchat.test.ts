import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { deflateSync } from 'node:zlib';
import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, type TestApi, type TestUser } from '../helpers/api.js';
import { launchBrowser, requireChromium } from '../helpers/browser.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { freePort } from '../helpers/process.js';
import { elfExecutable, fileInfo, json } from '../helpers/files.js';


const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of data) crc = (CRC_TABLE[(crc ^ byte) & 0xff] ?? 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A real, visible RGB PNG (a colour gradient) of the given size, made here so the test needs no fixture file. */
function gradientPng(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, no interlace
  const rows: Buffer[] = [];
  for (let y = 0; y < height; y += 1) {
    const row = Buffer.alloc(1 + width * 3); // filter byte 0, then RGB
    for (let x = 0; x < width; x += 1) row.set([Math.round((255 * x) / width), Math.round((255 * y) / height), 180], 1 + x * 3);
    rows.push(row);
  }
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk('IHDR', header), pngChunk('IDAT', deflateSync(Buffer.concat(rows))), pngChunk('IEND', Buffer.alloc(0))]);
}

const MAX_UPLOAD = 1024 * 1024;
const MESSAGES = '#message-list';
const PNG = gradientPng(120, 80);
const PNG_NAME = 'Sales & costs, Q3.png';
const botText = (page: Page, text: string) => page.locator(`${MESSAGES} .message.bot .message-text`, { hasText: text });

interface BrowserPage {
  context: BrowserContext;
  page: Page;
  /** CSP violations and uncaught page errors seen so far: every test ends expecting none. */
  problems: string[];
}

/** The image's natural width once it has loaded (0 while it has not). */
async function naturalWidth(page: Page, selector: string): Promise<number> {
  return Number(await page.locator(selector).first().evaluate((image) => (image as unknown as { naturalWidth: number }).naturalWidth));
}

/** Waits until the first image matching `selector` has loaded with real pixels (polled from here: the page's CSP forbids eval). */
async function imageLoaded(page: Page, selector: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await naturalWidth(page, selector)) === 0) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${selector} to load`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('web chat file attachments in Chromium (e2e)', function () {
  this.timeout(60_000);
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let replyWorkers: RunningWorkers | undefined;
  let fileWorkers: RunningWorkers | undefined;
  let browser: Browser | undefined;
  let user: TestUser;
  let operator: TestUser;
  let publicBotId: string;
  let prefix: string;
  const contexts: BrowserContext[] = [];

  const url = (): string => {
    if (api === undefined) throw new Error('the API is not running');
    return api.url;
  };

  async function openPage(): Promise<BrowserPage> {
    if (browser === undefined) throw new Error('the browser is not running');
    const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    contexts.push(context);
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.text().includes('Content Security Policy')) problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    return { context, page, problems };
  }

  async function signIn(page: Page, account: { email: string; password: string }, path = '/'): Promise<void> {
    await page.goto(`${url()}${path}`);
    await page.locator('#login-email').fill(account.email);
    await page.locator('#login-password').fill(account.password);
    await page.locator('#login-password').press('Enter');
  }

  async function openBot(page: Page, name: string): Promise<string> {
    const created = page.waitForResponse((response) => response.request().method() === 'POST' && /\/api\/bots\/[^/]+\/conversations$/.test(response.url()));
    await page.locator('#bot-list button', { hasText: name }).click();
    const body = (await (await created).json()) as { id: string };
    await page.locator('#connection-status[data-state="online"]').waitFor();
    return body.id;
  }

  /** Chooses files through the hidden file input, as the Attach button's file dialog would. */
  async function attach(page: Page, files: Array<{ name: string; mimeType: string; buffer: Buffer }>): Promise<void> {
    expect(await page.locator('#attach-button').isVisible(), 'the Attach button').to.equal(true);
    await page.locator('#attach-input').setInputFiles(files);
  }

  before(async function () {
    requireChromium(this);
    database = await createTestDatabase();
    const port = await freePort();
    const config = apiTestConfig(database.url, {
      LOG_LEVEL: 'error',
      BOTSERVER_PORT: String(port),
      BOTSERVER_ALLOWED_ORIGINS: `http://127.0.0.1:${port}`,
      BOTSERVER_RATE_LIMIT_PER_IP: '10000',
      BOTSERVER_MAX_UPLOAD_SIZE: String(MAX_UPLOAD),
    });
    prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    replyWorkers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    fileWorkers = await startWorkers(config, 'files', { queuePrefix: prefix });
    browser = await launchBrowser();

    const admin = await createTestUser(config, { role: 'admin' });
    const { accessToken } = await loginTokens(api, admin);
    const auth = { authorization: `Bearer ${accessToken}` };
    const helper = await postJson(`${api.url}/api/bots`, { name: 'Helper', greeting: 'Hello! Send me a picture.', rules: [{ match: 'picture', reply: 'Thanks for the picture.' }] }, auth);
    expect(helper.status).to.equal(201);
    const front = await postJson(`${api.url}/api/bots`, { name: 'Front desk', public: true, greeting: 'Welcome, guest!' }, auth);
    expect(front.status).to.equal(201);
    publicBotId = String(front.body.id);
    user = await createTestUser(config, { role: 'user' });
    operator = await createTestUser(config, { role: 'operator' });
  });

  after(async function () {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await fileWorkers?.shutdown();
    await replyWorkers?.shutdown();
    await api?.stop();
    await database?.destroy();
  });

  it('attaches a PNG, sends it, and shows it as a thumbnail and a download link; staff in another browser see it too', async () => {
    const { page, problems } = await openPage();
    await signIn(page, user);
    await page.locator('#view-bots').waitFor({ state: 'visible' });
    const conversationId = await openBot(page, 'Helper');
    await botText(page, 'Hello! Send me a picture.').waitFor();

    const uploaded = page.waitForResponse((response) => response.request().method() === 'POST' && response.url().endsWith('/api/files'));
    await attach(page, [{ name: PNG_NAME, mimeType: 'image/png', buffer: PNG }]);
    const chip = page.locator('#attachment-list .pending-file');
    await chip.waitFor();
    expect(await chip.locator('.pending-file-name').textContent()).to.equal(PNG_NAME);
    const upload = await uploaded;
    expect(upload.status()).to.equal(202);
    const fileId = String(((await upload.json()) as { id: string }).id);
    await page.locator('#attachment-list .pending-file[data-status="ready"]').waitFor();

    await page.locator('#compose-input').fill('Here is the picture');
    await page.locator('#send-button').click();
    const own = page.locator(`${MESSAGES} .message.user`, { hasText: 'Here is the picture' });
    await own.waitFor();
    expect(await page.locator('#attachment-list').isHidden(), 'the chips are gone once sent').to.equal(true);
    expect(await page.locator('#compose-input').inputValue()).to.equal('');
    const link = own.locator('a.file-link');
    expect(await link.getAttribute('href')).to.equal(`/api/files/${fileId}/content`);
    expect(await link.locator('.file-name').textContent()).to.equal(PNG_NAME);
    expect(await link.locator('.file-size').textContent()).to.equal(`${(PNG.length / 1024).toFixed(1)} KB`);
    await imageLoaded(page, `${MESSAGES} .message.user img.file-thumbnail`);
    expect(await naturalWidth(page, `${MESSAGES} img.file-thumbnail`)).to.equal(120);
    expect(await own.locator('img.file-thumbnail').getAttribute('alt')).to.equal(PNG_NAME);
    await botText(page, 'Thanks for the picture.').waitFor();
    expect(new URL(page.url()).searchParams.get('conversation'), 'the address names the open conversation').to.equal(conversationId);

    const screenshot = process.env.BOTSERVER_E2E_FILES_SCREENSHOT;
    if (screenshot !== undefined && screenshot !== '') {
      mkdirSync(dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
    }
    expect(problems).to.deep.equal([]);

    // A second browser: an operator of the tenant follows the conversation's link, signs in, and sees the same file.
    const second = await openPage();
    await signIn(second.page, operator, `/?conversation=${conversationId}`);
    const seen = second.page.locator(`${MESSAGES} .message.user`, { hasText: 'Here is the picture' });
    await seen.waitFor();
    await imageLoaded(second.page, `${MESSAGES} img.file-thumbnail`);
    expect(await naturalWidth(second.page, `${MESSAGES} img.file-thumbnail`)).to.equal(120);
    const secondLink = seen.locator('a.file-link');
    expect(await secondLink.getAttribute('href')).to.equal(`/api/files/${fileId}/content`);
    expect(await secondLink.locator('.file-name').textContent()).to.equal(PNG_NAME);
    const downloading = second.page.waitForEvent('download');
    await secondLink.click();
    const download = await downloading;
    expect(download.suggestedFilename()).to.equal(PNG_NAME);
    const saved = await download.createReadStream();
    const parts: Buffer[] = [];
    for await (const part of saved) parts.push(part as Buffer);
    expect(Buffer.concat(parts).equals(PNG), 'the downloaded bytes are the uploaded ones').to.equal(true);
    expect(second.problems).to.deep.equal([]);
  });

  it('says in plain words when a file is too large or of a refused type, removes a chip, and offers no upload to guests', async () => {
    const { page, problems } = await openPage();
    await signIn(page, user);
    await page.locator('#view-bots').waitFor({ state: 'visible' });
    await openBot(page, 'Helper');

    await attach(page, [{ name: 'tool.png', mimeType: 'image/png', buffer: elfExecutable() }]);
    await page.locator('#attach-error', { hasText: 'not accepted' }).waitFor();
    expect(await page.locator('#attach-error').textContent()).to.equal('“tool.png” was not sent: files of this type are not accepted.');
    expect(await page.locator('#attachment-list .pending-file').count(), 'a refused file leaves no chip').to.equal(0);

    await attach(page, [{ name: 'huge.txt', mimeType: 'text/plain', buffer: Buffer.alloc(MAX_UPLOAD + 200 * 1024, 'a') }]);
    await page.locator('#attach-error', { hasText: 'too large' }).waitFor();
    expect(await page.locator('#attach-error').textContent()).to.match(/^“huge\.txt” is too large to send/);
    expect(await page.locator('#attachment-list .pending-file').count()).to.equal(0);

    // A chosen file can be removed again before sending: it is deleted on the server.
    const uploaded = page.waitForResponse((response) => response.request().method() === 'POST' && response.url().endsWith('/api/files'));
    await attach(page, [{ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('some notes\n') }]);
    const fileId = String(((await (await uploaded).json()) as { id: string }).id);
    await page.locator('#attachment-list .pending-file[data-status="ready"]').waitFor();
    const deleted = page.waitForResponse((response) => response.request().method() === 'DELETE' && response.url().endsWith(`/api/files/${fileId}`));
    await page.getByRole('button', { name: 'Remove notes.txt' }).click();
    expect((await deleted).status()).to.equal(204);
    expect(await page.locator('#attachment-list').isHidden()).to.equal(true);
    expect(await page.locator('#attach-error').textContent()).to.equal('');

    const guest = await openPage();
    await guest.page.goto(`${url()}/?bot=${publicBotId}`);
    await botText(guest.page, 'Welcome, guest!').waitFor();
    expect(await guest.page.locator('#attach-button').isHidden(), 'no Attach button for a guest').to.equal(true);
    expect(problems).to.deep.equal([]);
    expect(guest.problems).to.deep.equal([]);
  });

  it('retries the thumbnail of a file still being stored, and shows it once the files worker has stored it', async () => {
    if (api === undefined) throw new Error('the API is not running');
    // No files worker for a moment: the upload stays pending, so the first thumbnail request gets 409.
    await fileWorkers?.shutdown();
    fileWorkers = undefined;
    const { page, problems } = await openPage();
    await signIn(page, user);
    await page.locator('#view-bots').waitFor({ state: 'visible' });
    await openBot(page, 'Helper');
    const uploaded = page.waitForResponse((response) => response.request().method() === 'POST' && response.url().endsWith('/api/files'));
    await attach(page, [{ name: 'later.png', mimeType: 'image/png', buffer: PNG }]);
    const fileId = String(((await (await uploaded).json()) as { id: string }).id);
    await page.locator('#attachment-list .pending-file[data-status="ready"]').waitFor();

    const refused = page.waitForResponse((response) => response.url().endsWith(`/api/files/${fileId}/content`) && response.status() === 409);
    const polled = page.waitForResponse((response) => response.url().endsWith(`/api/files/${fileId}`) && response.status() === 200);
    await page.locator('#send-button').click(); // files alone, no text
    await refused;
    await polled;
    const own = page.locator(`${MESSAGES} .message.user`, { has: page.locator('.file-name', { hasText: 'later.png' }) });
    await own.waitFor();
    expect(await own.locator('.message-text').isHidden(), 'no empty text line').to.equal(true);
    expect(await naturalWidth(page, `${MESSAGES} img.file-thumbnail`)).to.equal(0);

    fileWorkers = await startWorkers(api.config, 'files', { queuePrefix: prefix });
    await imageLoaded(page, `${MESSAGES} img.file-thumbnail`, 20_000);
    const { accessToken } = await loginTokens(api, user);
    expect(json(await fileInfo(api.url, accessToken, fileId)).status).to.equal('stored');
    expect(problems).to.deep.equal([]);
  });
});
