import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, type TestApi, type TestUser } from '../helpers/api.js';
import { launchBrowser, requireChromium } from '../helpers/browser.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { freePort } from '../helpers/process.js';
import { startLlmServer, type LlmServer } from '../helpers/llm-server.js';


async function waitFor<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface BrowserPage {
  context: BrowserContext;
  page: Page;
  /** CSP violations and uncaught page errors seen so far: every test ends expecting none. */
  problems: string[];
}

/** Records every WebSocket the page opens, so a test can cut the connection as a network failure would. */
const RECORD_WEBSOCKETS = `(() => {
  const Native = window.WebSocket;
  const sockets = [];
  Object.defineProperty(window, '__testSockets', { value: sockets });
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      sockets.push(this);
    }
  };
})();`;

const MESSAGES = '#message-list';
const botText = (page: Page, text: string) => page.locator(`${MESSAGES} .message.bot .message-text`, { hasText: text });
const userText = (page: Page, text: string) => page.locator(`${MESSAGES} .message.user .message-text`, { hasText: text });

describe('web chat page in Chromium (e2e)', function () {
  this.timeout(60_000);
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers | undefined;
  let browser: Browser | undefined;
  let llm: LlmServer | undefined;
  let user: TestUser;
  let helperBotId: string;
  let publicBotId: string;
  const contexts: BrowserContext[] = [];

  const url = (): string => {
    if (api === undefined) throw new Error('the API is not running');
    return api.url;
  };

  async function openPage(options: { recordSockets?: boolean } = {}): Promise<BrowserPage> {
    if (browser === undefined) throw new Error('the browser is not running');
    const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
    contexts.push(context);
    if (options.recordSockets === true) await context.addInitScript({ content: RECORD_WEBSOCKETS });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.text().includes('Content Security Policy')) problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    return { context, page, problems };
  }

  async function signIn(page: Page, account: { email: string; password: string }): Promise<void> {
    await page.goto(url());
    await page.locator('#login-email').fill(account.email);
    await page.locator('#login-password').fill(account.password);
    // Keyboard only: Enter in the password field submits the form.
    await page.locator('#login-password').press('Enter');
    await page.locator('#view-bots').waitFor({ state: 'visible' });
  }

  /** Opens a bot from the list; returns the new conversation's id (read from the page's own request). */
  async function openBot(page: Page, name: string): Promise<string> {
    const created = page.waitForResponse((response) => response.request().method() === 'POST' && /\/api\/bots\/[^/]+\/conversations$/.test(response.url()));
    await page.locator('#bot-list button', { hasText: name }).click();
    const body = (await (await created).json()) as { id: string };
    await page.locator('#connection-status[data-state="online"]').waitFor();
    return body.id;
  }

  async function storageState(page: Page): Promise<{ local: number; session: number; cookie: string }> {
    const json = await page.evaluate('JSON.stringify({ local: localStorage.length, session: sessionStorage.length, cookie: document.cookie })');
    return JSON.parse(String(json)) as { local: number; session: number; cookie: string };
  }

  before(async function () {
    requireChromium(this);
    database = await createTestDatabase();
    llm = await startLlmServer();
    const port = await freePort();
    const config = apiTestConfig(database.url, {
      LLM_BASE_URL: llm.url,
      LOG_LEVEL: 'error',
      BOTSERVER_PORT: String(port),
      BOTSERVER_ALLOWED_ORIGINS: `http://127.0.0.1:${port}`,
      // every page load fetches several assets from 127.0.0.1: the per-IP budget is not under test here
      BOTSERVER_RATE_LIMIT_PER_IP: '10000',
    });
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    browser = await launchBrowser();

    const admin = await createTestUser(config, { role: 'admin' });
    const { accessToken } = await loginTokens(api, admin);
    const auth = { authorization: `Bearer ${accessToken}` };
    const helper = await postJson(
      `${api.url}/api/bots`,
      { name: 'Helper', greeting: 'Hello! Ask me about opening hours.', rules: [{ match: 'opening hours', reply: 'We open at 9.' }] },
      auth,
    );
    expect(helper.status).to.equal(201);
    helperBotId = String(helper.body.id);
    const front = await postJson(
      `${api.url}/api/bots`,
      { name: 'Front desk', public: true, greeting: 'Welcome, guest! Ask about the price.', rules: [{ match: 'price', reply: 'It costs 5 euros.' }] },
      auth,
    );
    expect(front.status).to.equal(201);
    publicBotId = String(front.body.id);
    const writer = await postJson(`${api.url}/api/bots`, { name: 'Writer', llm: {} }, auth);
    expect(writer.status).to.equal(201);
    user = await createTestUser(config, { role: 'user' });
  });

  after(async function () {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    await workers?.shutdown();
    await api?.stop();
    await database?.destroy();
    await llm?.stop();
  });

  it('signs in through the form, chats with a bot, keeps the session out of script reach, and signs out', async () => {
    const { page, context, problems } = await openPage();
    await signIn(page, user);
    expect(await page.locator('#account-name').textContent()).to.equal(user.email);
    await openBot(page, 'Helper');
    await botText(page, 'Hello! Ask me about opening hours.').waitFor();

    await page.locator('#compose-input').fill('What are your opening hours?');
    await page.locator('#send-button').click();
    await botText(page, 'We open at 9.').waitFor();
    expect(await userText(page, 'What are your opening hours?').count(), 'the own message is shown once').to.equal(1);
    expect(await page.locator('#compose-input').inputValue()).to.equal('');

    const storage = await storageState(page);
    expect(storage.local, 'localStorage').to.equal(0);
    expect(storage.session, 'sessionStorage').to.equal(0);
    expect(storage.cookie).to.include('botserver_csrf=');
    expect(storage.cookie).not.to.include('botserver_session');
    const session = (await context.cookies()).find((cookie) => cookie.name === 'botserver_session');
    expect(session?.httpOnly).to.equal(true);
    expect(session?.sameSite).to.equal('Strict');

    const screenshot = process.env.BOTSERVER_E2E_SCREENSHOT;
    if (screenshot !== undefined && screenshot !== '') await page.screenshot({ path: screenshot, fullPage: true });

    await page.locator('#logout-button').click();
    await page.locator('#view-login').waitFor({ state: 'visible' });
    const me = await page.evaluate('fetch("/api/me").then((response) => response.status)');
    expect(me, 'the cookie session is revoked').to.equal(401);
    await page.reload();
    await page.locator('#view-login').waitFor({ state: 'visible' });
    expect(problems).to.deep.equal([]);
  });

  it('shows hostile message text as literal text, never as markup', async () => {
    const { page, problems } = await openPage();
    await signIn(page, user);
    await openBot(page, 'Helper');
    const hostile = '<img src=x onerror="window.__xss=1">';
    await page.locator('#compose-input').fill(hostile);
    await page.locator('#compose-input').press('Enter');
    await userText(page, hostile).waitFor();
    // The rule bot answers with its fallback; wait for it so a late render is covered too.
    await page.locator(`${MESSAGES} .message.bot`).nth(1).waitFor();

    expect(await page.locator(`${MESSAGES} .message.user .message-text`).last().textContent()).to.equal(hostile);
    expect(await page.evaluate('typeof window.__xss')).to.equal('undefined');
    expect(await page.locator(`${MESSAGES} img`).count()).to.equal(0);
    expect(problems).to.deep.equal([]);
  });

  it('lets a visitor chat with a public bot as a guest from /?bot=<id>, and refuses a private bot', async () => {
    const { page, problems } = await openPage();
    await page.goto(`${url()}/?bot=${publicBotId}`);
    await botText(page, 'Welcome, guest! Ask about the price.').waitFor();
    await page.locator('#connection-status[data-state="online"]').waitFor();
    expect(await page.locator('#account').isHidden()).to.equal(true);
    expect(await page.locator('#back-button').isHidden()).to.equal(true);
    await page.locator('#compose-input').fill('What is the price?');
    await page.locator('#compose-input').press('Enter');
    await botText(page, 'It costs 5 euros.').waitFor();
    expect(await userText(page, 'What is the price?').count()).to.equal(1);
    const storage = await storageState(page);
    expect([storage.local, storage.session, storage.cookie]).to.deep.equal([0, 0, '']);

    await page.goto(`${url()}/?bot=${helperBotId}`);
    await page.locator('#view-login').waitFor({ state: 'visible' });
    expect(await page.locator('#login-error').textContent()).to.include('not available');
    expect(problems).to.deep.equal([]);
  });

  it('after a dropped connection, shows the reply that was produced while it was offline', async () => {
    const { page, context, problems } = await openPage({ recordSockets: true });
    await signIn(page, user);
    const conversationId = await openBot(page, 'Helper');
    await botText(page, 'Hello! Ask me about opening hours.').waitFor();

    await context.setOffline(true);
    await page.evaluate('window.__testSockets.forEach((socket) => socket.close())');
    await page.locator('#connection-status[data-state="reconnecting"]').waitFor();
    expect(await page.locator('#send-button').isDisabled(), 'no sending while disconnected').to.equal(true);

    // Another client of the same account writes over REST; the worker answers while the page is offline.
    const { accessToken } = await loginTokens({ url: url() }, user);
    const sent = await postJson(`${url()}/api/conversations/${conversationId}/messages`, { text: 'Opening hours on Sunday?' }, { authorization: `Bearer ${accessToken}` });
    expect(sent.status).to.equal(202);
    await waitFor(async () => {
      const response = await fetch(`${url()}/api/conversations/${conversationId}/messages`, { headers: { authorization: `Bearer ${accessToken}` } });
      const body = (await response.json()) as { messages: Array<{ role: string; text: string }> };
      return body.messages.some((message) => message.role === 'bot' && message.text === 'We open at 9.') ? true : undefined;
    }, 'the worker to store the reply');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await botText(page, 'We open at 9.').count(), 'the reply was missed while offline').to.equal(0);
    expect(await page.locator('#connection-status').getAttribute('data-state')).to.equal('reconnecting');

    await context.setOffline(false);
    await page.locator('#connection-status[data-state="online"]').waitFor({ timeout: 20_000 });
    await botText(page, 'We open at 9.').waitFor();
    expect(await userText(page, 'Opening hours on Sunday?').count()).to.equal(1);
    expect(await botText(page, 'We open at 9.').count()).to.equal(1);
    const texts = await page.locator(`${MESSAGES} .message .message-text`).allTextContents();
    expect(texts).to.deep.equal(['Hello! Ask me about opening hours.', 'Opening hours on Sunday?', 'We open at 9.']);
    expect(problems).to.deep.equal([]);
  });

  it('builds a streamed reply live from message:chunk, then shows the final message once; shows message:error', async () => {
    if (llm === undefined) throw new Error('the LLM stand-in is not running');
    llm.setScript([{ kind: 'stream', deltas: ['Once', ' upon', ' a', ' time', '.'], delayMs: 400 }]);
    const { page, problems } = await openPage();
    await signIn(page, user);
    await openBot(page, 'Writer');
    await page.locator('#compose-input').fill('Tell me a story');
    await page.locator('#compose-input').press('Enter');

    const draft = page.locator(`${MESSAGES} .message.bot.streaming .message-text`);
    await draft.waitFor();
    const partial = await draft.textContent();
    expect(partial, 'a partial text while streaming').to.match(/^Once/);
    expect(partial).not.to.equal('Once upon a time.');
    expect(await page.locator(MESSAGES).getAttribute('aria-busy')).to.equal('true');

    await page.locator(`${MESSAGES} .message.bot:not(.streaming) .message-text`, { hasText: 'Once upon a time.' }).waitFor();
    expect(await page.locator(`${MESSAGES} .message.bot`).count(), 'the draft became the final message').to.equal(1);
    expect(await page.locator(MESSAGES).getAttribute('aria-busy')).to.equal(null);

    llm.setScript([{ kind: 'status', status: 400, error: { message: 'bad model', type: 'invalid_request_error', code: 'model_not_found' } }]);
    await page.locator('#compose-input').fill('Another one');
    await page.locator('#send-button').click();
    const error = page.locator(`${MESSAGES} .message.error[role="alert"] .message-text`);
    await error.waitFor();
    expect(await error.textContent()).to.include('could not answer');
    expect(problems).to.deep.equal([]);
  });

  it('makes an account with a one-time password choose a new one before chatting', async () => {
    if (api === undefined) throw new Error('the API is not running');
    const admin = await createTestUser(api.config, { role: 'admin' });
    const { accessToken } = await loginTokens({ url: url() }, admin);
    const created = await postJson(`${url()}/api/users`, { email: `fresh-${Date.now()}@example.test`, role: 'user' }, { authorization: `Bearer ${accessToken}` });
    expect(created.status).to.equal(201);
    const account = { email: String(created.body.email), password: String(created.body.password) };

    const { page, problems } = await openPage();
    await page.goto(url());
    await page.locator('#login-email').fill(account.email);
    await page.locator('#login-password').fill(account.password);
    await page.locator('#login-submit').click();
    await page.locator('#view-password').waitFor({ state: 'visible' });
    // A reload keeps the cookie session and comes back to the same form.
    await page.reload();
    await page.locator('#view-password').waitFor({ state: 'visible' });
    await page.locator('#password-current').fill(account.password);
    await page.locator('#password-new').fill('a much better passphrase');
    await page.locator('#password-confirm').fill('a much better passphrase');
    await page.locator('#password-submit').click();
    await page.locator('#view-bots').waitFor({ state: 'visible' });
    await openBot(page, 'Helper');
    expect(problems).to.deep.equal([]);
  });
});
