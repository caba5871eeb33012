import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { DEMO_BOT, firstRun, type FirstRun } from '../../scripts/commands/firstRun.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { launchBrowser, requireChromium } from '../helpers/browser.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { freePort, openBrowserPage, saveScreenshot } from '../helpers/console.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const botText = (page: Page, text: string) => page.locator('#message-list .message.bot .message-text', { hasText: text });

/** The demo bot's rule for a plain phrase (not a /regex/), so the test can say something it matches. */
function phraseRule(match: string): { match: string; reply: string } {
  const rule = DEMO_BOT.rules.find((candidate) => candidate.match === match);
  if (rule === undefined) throw new Error(`the demo bot has no "${match}" rule`);
  return rule;
}

describe('first run in Chromium (e2e)', function () {
  this.timeout(60_000);
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers | undefined;
  let browser: Browser | undefined;
  let run: FirstRun;
  const contexts: BrowserContext[] = [];

  before(async function () {
    requireChromium(this);
    database = await createTestDatabase();
    const port = await freePort();
    const config = apiTestConfig(database.url, { LOG_LEVEL: 'error', BOTSERVER_PORT: String(port), BOTSERVER_ALLOWED_ORIGINS: `http://127.0.0.1:${port}` });
    // What `npm start` does on an empty database, on this test's own database.
    run = await firstRun(config);
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    browser = await launchBrowser();
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await workers?.shutdown();
    await api?.stop();
    await database?.destroy();
  });

  it('a guest opens the printed link and chats with the demo bot at once: greeting, a rule reply, a handoff', async () => {
    if (api === undefined || browser === undefined) throw new Error('not started');
    expect(run.admin?.email, 'the bootstrap admin').to.be.a('string');
    const demo = run.demoBot;
    if (demo === undefined) throw new Error('firstRun made no demo bot');
    expect(demo.guestPath).to.equal(`/?bot=${demo.id}`);

    const { page, problems } = await openBrowserPage(browser, contexts);
    await page.goto(`${api.url}${demo.guestPath}`);
    await botText(page, DEMO_BOT.greeting).waitFor();
    await page.locator('#connection-status[data-state="online"]').waitFor();
    expect(await page.locator('#console-nav').isHidden(), 'a guest sees no console').to.equal(true);

    const help = phraseRule('help');
    await page.locator('#compose-input').fill('Can you help me, please?');
    await page.locator('#compose-input').press('Enter');
    await botText(page, help.reply).waitFor();

    // The demo's handoff rule answers, and the conversation now waits for a person: the visitor is told so.
    const handoff = DEMO_BOT.rules.find((rule) => 'handoff' in rule && rule.handoff);
    if (handoff === undefined) throw new Error('the demo bot has no handoff rule');
    await page.locator('#compose-input').fill('I would like to talk to a person');
    await page.locator('#send-button').click();
    await botText(page, handoff.reply).waitFor();
    await page.locator('#message-list .chat-event', { hasText: 'Waiting for a person' }).waitFor();
    expect(await page.locator('#handoff-button').isHidden(), 'no second request while waiting').to.equal(true);
    await saveScreenshot(page, 'first-run-guest-chat');

    const texts = await page.locator('#message-list .message .message-text').allTextContents();
    expect(texts).to.deep.equal([DEMO_BOT.greeting, 'Can you help me, please?', help.reply, 'I would like to talk to a person', handoff.reply]);
    expect(problems).to.deep.equal([]);
  });
});
