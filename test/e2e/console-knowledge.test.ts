import { expect } from 'chai';
import type { Browser, BrowserContext } from 'playwright-core';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, type TestApi, type TestUser } from '../helpers/api.js';
import { launchBrowser, requireChromium } from '../helpers/browser.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { freePort, openBrowserPage, saveScreenshot, signIn } from '../helpers/console.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { startQdrantStandIn, type QdrantStandIn } from '../helpers/qdrant-server.js';

describe('console knowledge documents in Chromium (e2e, feature vectordb)', function () {
  this.timeout(60_000);
  let database: TestDatabase | undefined;
  let qdrant: QdrantStandIn | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers[] = [];
  let browser: Browser | undefined;
  let operator: TestUser;
  let botId: string;
  const contexts: BrowserContext[] = [];

  before(async function () {
    requireChromium(this);
    database = await createTestDatabase();
    qdrant = await startQdrantStandIn();
    const port = await freePort();
    const config = apiTestConfig(database.url, { LOG_LEVEL: 'error', BOTSERVER_PORT: String(port), BOTSERVER_ALLOWED_ORIGINS: `http://127.0.0.1:${port}`, BOTSERVER_FEATURES: 'vectordb', QDRANT_URL: qdrant.url });
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = [await startWorkers(config, 'reply', { queuePrefix: prefix }), await startWorkers(config, 'embed', { queuePrefix: prefix })];
    browser = await launchBrowser();
    operator = await createTestUser(config, { role: 'operator' });
    const { accessToken } = await loginTokens(api, operator);
    const bot = await postJson(`${api.url}/api/bots`, { name: 'Shipping' }, { authorization: `Bearer ${accessToken}` });
    expect(bot.status).to.equal(201);
    botId = String(bot.body.id);
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    for (const running of workers) await running.shutdown();
    await api?.stop();
    await qdrant?.stop();
    await database?.destroy();
  });

  it('adds a document, shows it pending then indexed, lets the bot answer from it, and deletes it after confirmation', async () => {
    if (browser === undefined || api === undefined) throw new Error('not started');
    const { page, problems } = await openBrowserPage(browser, contexts);
    await signIn(page, api.url, operator);
    await page.goto(`${api.url}/#/bots/${botId}`);
    await page.locator('#bot-knowledge').waitFor({ state: 'visible' });
    expect(await page.locator('#knowledge-empty').isVisible()).to.equal(true);

    await page.locator('#knowledge-title').fill('Delivery times');
    await page.locator('#knowledge-text').fill('Parcels within the country arrive within two working days. Parcels abroad take a week.');
    await page.locator('#knowledge-add').click();
    const row = page.locator('#knowledge-rows tr', { hasText: 'Delivery times' });
    await row.waitFor();
    await page.locator('#knowledge-rows tr[data-status="indexed"]', { hasText: 'Delivery times' }).waitFor({ timeout: 30_000 });
    expect(await row.textContent()).to.include('Indexed');
    await saveScreenshot(page, 'console-bot-knowledge');

    await page.locator('#nav-chat').click();
    await page.locator('#bot-list button', { hasText: 'Shipping' }).click();
    await page.locator('#connection-status[data-state="online"]').waitFor();
    await page.locator('#compose-input').fill('How long do parcels abroad take?');
    await page.locator('#compose-input').press('Enter');
    await page.locator('#message-list .message.bot .message-sources', { hasText: 'Delivery times' }).waitFor();

    await page.goto(`${api.url}/#/bots/${botId}`);
    await row.waitFor();
    await row.getByRole('button', { name: 'Delete Delivery times' }).click();
    await page.locator('#confirm-dialog[open]').waitFor();
    await page.keyboard.press('Escape');
    expect(await row.count(), 'Escape cancels').to.equal(1);
    await row.getByRole('button', { name: 'Delete Delivery times' }).click();
    await page.locator('#confirm-ok').click();
    await page.locator('#knowledge-empty').waitFor({ state: 'visible' });
    expect(await row.count()).to.equal(0);
    expect(problems).to.deep.equal([]);
  });
});
