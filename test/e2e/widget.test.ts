import { expect } from 'chai';
import type { Browser, BrowserContext, Frame, Page } from 'playwright-core';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, type TestApi } from '../helpers/api.js';
import { launchBrowser, requireChromium } from '../helpers/browser.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { freePort, openBrowserPage, saveScreenshot, startHostPage, waitFor } from '../helpers/console.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/** A shop's page on another origin that embeds the widget with the one-line snippet. */
function shopPage(apiUrl: string, botId: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A shop</title></head>
<body><h1>A shop</h1><p>Products and prices.</p>
<script src="${apiUrl}/widget.js" data-bot="${botId}" async></script></body></html>`;
}

/** The widget's frame once it has navigated somewhere (the chat page, or Chromium's error page when refused). */
async function widgetFrame(page: Page): Promise<Frame> {
  const frame = await waitFor(() => Promise.resolve(page.frames().find((candidate) => candidate !== page.mainFrame() && candidate.url() !== 'about:blank' && candidate.url() !== '')), 'the widget frame');
  expect(frame.parentFrame(), 'a frame of the shop page itself').to.equal(page.mainFrame());
  return frame;
}

describe('embeddable widget in Chromium (e2e)', function () {
  this.timeout(60_000);
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers | undefined;
  let browser: Browser | undefined;
  let allowedSite: { url: string; close(): Promise<void> } | undefined;
  let otherSite: { url: string; close(): Promise<void> } | undefined;
  let botId: string;
  const contexts: BrowserContext[] = [];

  before(async function () {
    requireChromium(this);
    database = await createTestDatabase();
    const port = await freePort();
    const config = apiTestConfig(database.url, { LOG_LEVEL: 'error', BOTSERVER_PORT: String(port), BOTSERVER_ALLOWED_ORIGINS: `http://127.0.0.1:${port}` });
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    browser = await launchBrowser();

    // Two sites on two more local ports; only the first is listed for the bot.
    const [allowedPort, otherPort] = [await freePort(), await freePort()];
    const admin = await createTestUser(config, { role: 'admin' });
    const { accessToken } = await loginTokens(api, admin);
    const bot = await postJson(
      `${api.url}/api/bots`,
      { name: 'Shop helper', public: true, greeting: 'Hi! Ask me about delivery.', rules: [{ match: 'delivery', reply: 'Delivery takes two days.' }], allowedOrigins: [`http://127.0.0.1:${allowedPort}`] },
      { authorization: `Bearer ${accessToken}` },
    );
    expect(bot.status).to.equal(201);
    botId = String(bot.body.id);
    allowedSite = await startHostPage(shopPage(api.url, botId), allowedPort);
    otherSite = await startHostPage(shopPage(api.url, botId), otherPort);
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await allowedSite?.close();
    await otherSite?.close();
    await workers?.shutdown();
    await api?.stop();
    await database?.destroy();
  });

  it('on a listed origin, the bubble opens the chat in a frame, the visitor chats with the bot, and the bubble closes it', async () => {
    if (browser === undefined || allowedSite === undefined || api === undefined) throw new Error('not started');
    const { page, problems } = await openBrowserPage(browser, contexts);
    await page.goto(allowedSite.url);
    const bubble = page.getByRole('button', { name: 'Open the chat' });
    await bubble.waitFor();
    expect(await bubble.getAttribute('aria-expanded')).to.equal('false');
    expect(page.frames(), 'no frame (and no request to the bot server) before the visitor asks').to.have.length(1);
    await bubble.focus();
    await page.keyboard.press('Enter');

    const frame = await widgetFrame(page);
    expect(frame.url()).to.equal(`${api.url}/widget/${botId}`);
    await frame.locator('#message-list .message.bot .message-text', { hasText: 'Hi! Ask me about delivery.' }).waitFor();
    await frame.locator('#connection-status[data-state="online"]').waitFor();
    await frame.locator('#compose-input').fill('How long does delivery take?');
    await frame.locator('#compose-input').press('Enter');
    await frame.locator('#message-list .message.bot .message-text', { hasText: 'Delivery takes two days.' }).waitFor();
    expect(await frame.locator('#handoff-button').isVisible(), 'the visitor may ask for a person').to.equal(true);
    const close = page.getByRole('button', { name: 'Close the chat' });
    expect(await close.getAttribute('aria-expanded')).to.equal('true');
    await saveScreenshot(page, 'widget-allowed-origin');

    // The frame's own close button (or Escape in it) closes the panel and gives the focus back to the bubble.
    await frame.locator('#widget-close').click();
    await bubble.waitFor();
    expect(await page.evaluate('document.activeElement?.dataset?.botserverWidget ?? ""')).to.equal(botId);
    expect(await page.locator('#botserver-chat-panel').isHidden()).to.equal(true);

    // The listed origin may also call the API directly (CORS), for a guest token of this bot.
    const direct = await page.evaluate(`fetch(${JSON.stringify(`${api.url}/api/bots/${botId}/guest-token`)}, { method: 'POST' }).then((response) => response.status, () => 'refused')`);
    expect(direct).to.equal(200);
    expect(problems).to.deep.equal([]);
  });

  it('on an origin that is not listed, the frame is refused (frame-ancestors) and so are direct API calls (CORS)', async () => {
    if (browser === undefined || otherSite === undefined || allowedSite === undefined || api === undefined) throw new Error('not started');
    const { page, consoleLines } = await openBrowserPage(browser, contexts);
    await page.goto(otherSite.url);
    const answer = page.waitForResponse((response) => response.url() === `${api?.url ?? ''}/widget/${botId}`);
    await page.getByRole('button', { name: 'Open the chat' }).click();
    const policy = (await answer).headers()['content-security-policy'] ?? '';
    expect(policy).to.include(`frame-ancestors ${allowedSite.url}`);
    expect(policy).not.to.include(otherSite.url);

    await waitFor(() => Promise.resolve(consoleLines.some((line) => line.includes('frame-ancestors')) ? true : undefined), 'Chromium to report the refused frame');
    const frame = await widgetFrame(page);
    expect(frame.url(), 'the frame shows the browser error page, not the chat').to.match(/^chrome-error:/);
    expect(await frame.locator('#compose-input').count()).to.equal(0);
    await saveScreenshot(page, 'widget-refused-origin');

    const direct = await page.evaluate(`fetch(${JSON.stringify(`${api.url}/api/bots/${botId}/guest-token`)}, { method: 'POST' }).then((response) => response.status, () => 'refused')`);
    expect(direct, 'CORS refuses the unlisted origin').to.equal('refused');
  });
});
