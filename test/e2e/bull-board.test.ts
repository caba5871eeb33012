import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { expect } from 'chai';
import { Redis } from 'ioredis';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { QUEUE_NAMES } from '../../shared/queue/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, startTestApi, type TestApi, type TestUser } from '../helpers/api.js';
import { launchBrowser, requireChromium } from '../helpers/browser.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { freePort, waitFor } from '../helpers/process.js';

interface BrowserPage {
  context: BrowserContext;
  page: Page;
  /** CSP violations, uncaught page errors and requests to any other origin: every test ends expecting none. */
  problems: string[];
}

interface AuditRow {
  id: string;
  actor: string | null;
  tenant_id: string | null;
  outcome: string;
  target: string | null;
  details: Record<string, unknown>;
}

describe('Bull Board in Chromium (e2e)', function () {
  this.timeout(60_000);
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers | undefined;
  let browser: Browser | undefined;
  let admin: TestUser;
  let user: TestUser;
  const contexts: BrowserContext[] = [];

  const url = (path = ''): string => {
    if (api === undefined) throw new Error('the API is not running');
    return `${api.url}${path}`;
  };

  async function openPage(): Promise<BrowserPage> {
    if (browser === undefined) throw new Error('the browser is not running');
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    contexts.push(context);
    const problems: string[] = [];
    // The board must not call out to any third party (its stock page links a web font; we strip it).
    await context.route(
      (target) => target.origin !== new URL(url()).origin,
      async (route) => {
        problems.push(`request to another origin: ${route.request().url()}`);
        await route.abort();
      },
    );
    const page = await context.newPage();
    page.on('console', (message) => {
      if (message.text().includes('Content Security Policy')) problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    return { context, page, problems };
  }

  /** Signs in through the web chat page (which sets the HttpOnly session cookie). */
  async function signIn(page: Page, account: TestUser): Promise<void> {
    await page.goto(url('/'));
    await page.locator('#login-email').fill(account.email);
    await page.locator('#login-password').fill(account.password);
    await page.locator('#login-password').press('Enter');
    await page.locator('#view-bots').waitFor({ state: 'visible' });
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
    });
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'all', { queuePrefix: prefix });
    browser = await launchBrowser();
    admin = await createTestUser(config, { role: 'admin' });
    user = await createTestUser(config, { role: 'user' });
  });

  after(async function () {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await workers?.shutdown();
    if (api !== undefined) {
      const redis = new Redis(api.config.redisUrl, { maxRetriesPerRequest: null });
      for (const name of QUEUE_NAMES) {
        const queue = new Queue(name, { connection: redis, prefix: api.kernel.queues.prefix });
        await queue.obliterate({ force: true });
        await queue.close();
      }
      redis.disconnect();
      await api.stop();
    }
    await database?.destroy();
  });

  it('an admin signed in on the web page opens /admin/queues and sees the six queues, with no CSP violation', async () => {
    const { page, problems } = await openPage();
    await signIn(page, admin);
    const response = await page.goto(url('/admin/queues'));
    expect(response?.status()).to.equal(200);
    for (const name of QUEUE_NAMES) {
      await page.getByRole('link', { name, exact: true }).first().waitFor({ state: 'visible' });
    }
    expect(problems).to.deep.equal([]);
  });

  it('a retry clicked in the board is recorded as admin.action in the audit trail; the board shows only ciphertext', async () => {
    if (api === undefined || database === undefined) throw new Error('not started');
    // A bot-reply job for a message that does not exist: the reply worker fails it at once (unrecoverable).
    const plain = { tenantId: admin.tenantId, conversationId: randomUUID(), messageId: randomUUID() };
    const job = await api.kernel.queues.enqueue('bot-reply', 'reply', plain);
    const jobId = String(job.id);
    await waitFor(async () => (await job.getState()) === 'failed', 15_000);
    const queue = api.kernel.queues.queue('bot-reply');
    const firstFailure = (await queue.getJob(jobId))?.finishedOn;

    const { page, problems } = await openPage();
    await signIn(page, admin);
    const listed = page.waitForResponse((response) => response.url().includes('/admin/queues/api/queues?') && response.url().includes('activeQueue=bot-reply'));
    await page.goto(url('/admin/queues/queue/bot-reply?status=failed'));
    const listing = await (await listed).text();
    expect(listing).to.include(`"id":"${jobId}"`);
    for (const secret of [plain.conversationId, plain.messageId]) expect(listing).to.not.include(secret);
    expect(listing).to.match(/"data":\{"v":1,"kid":"[^"]+","iv":"[^"]+","tag":"[^"]+","ct":"[^"]+"\}/);

    const card = page.locator('[class*="card-"]', { has: page.locator('[class*="jobId-"]', { hasText: new RegExp(`^#${jobId}$`) }) });
    await card.locator('[class*="jobActions-"] button:has(svg.lucide-refresh-cw)').click();
    const dialog = page.getByRole('alertdialog').or(page.getByRole('dialog'));
    await dialog.filter({ hasText: 'retry this job' }).waitFor({ state: 'visible' });
    const retried = page.waitForResponse((response) => response.request().method() === 'PUT' && response.url().endsWith(`/api/queues/bot-reply/${jobId}/retry`));
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    expect((await retried).status()).to.be.within(200, 299);

    const ownerDb = database.ownerDb;
    const row = await waitFor(
      async () =>
        (await ownerDb('audit_events')
          .where({ type: 'admin.action', actor: admin.id })
          .whereRaw("details->>'action' = 'retry' and details->>'jobId' = ?", [jobId])
          .first<AuditRow | undefined>()) ?? false,
      15_000,
    );
    expect(row).to.include({ outcome: 'success', tenant_id: admin.tenantId, target: `queue:bot-reply:job:${jobId}` });
    expect(row.details).to.include({ tool: 'bull-board', queue: 'bot-reply' });
    // The worker ran it again (and it failed again: the message still does not exist).
    await waitFor(async () => {
      const again = await queue.getJob(jobId);
      return again !== undefined && again.finishedOn !== firstFailure && (await again.getState()) === 'failed';
    }, 15_000);
    expect(problems).to.deep.equal([]);
  });

  it('a signed-in user who is not an admin gets 403', async () => {
    const { page, problems } = await openPage();
    await signIn(page, user);
    const response = await page.goto(url('/admin/queues'));
    expect(response?.status()).to.equal(403);
    expect(await page.locator('body').innerText()).to.include('forbidden');
    const api403 = await page.evaluate(`fetch('/admin/queues/api/queues').then((response) => response.status)`);
    expect(api403).to.equal(403);
    expect(problems).to.deep.equal([]);
  });

  it('an anonymous visitor is sent to the login page, and the board API answers 401', async () => {
    const { page, problems } = await openPage();
    const response = await page.goto(url('/admin/queues'));
    expect(response?.url()).to.equal(url('/'));
    expect((await response?.request().redirectedFrom()?.response())?.status()).to.equal(302);
    await page.locator('#login-email').waitFor({ state: 'visible' });
    const status = await page.evaluate(`fetch('/admin/queues/api/queues', { headers: { accept: 'application/json' } }).then((response) => response.status)`);
    expect(status).to.equal(401);
    expect(problems).to.deep.equal([]);
  });
});
