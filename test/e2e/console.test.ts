import { expect } from 'chai';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, createTestUser, loginTokens, postJson, startTestApi, type TestApi, type TestUser } from '../helpers/api.js';
import { launchBrowser, requireChromium } from '../helpers/browser.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { freePort, openBrowserPage, saveScreenshot, signIn, waitFor } from '../helpers/console.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

/** The private Dovecot of `scripts/services.sh --mail`: a real IMAP server on loopback that refuses a wrong login. */
const DOVECOT_IMAP_PORT = 1143;

const text = (page: Page, list: string, role: string, wanted: string) => page.locator(`${list} .message.${role} .message-text`, { hasText: wanted });
const event = (page: Page, list: string, wanted: string) => page.locator(`${list} .chat-event`, { hasText: wanted });

/** What the page's own cookie session reads from the API (the console's view of the data). */
async function fetchAsPage(page: Page, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const result = await page.evaluate(`fetch(${JSON.stringify(path)}).then(async (response) => JSON.stringify({ status: response.status, body: await response.json().catch(() => ({})) }))`);
  return JSON.parse(String(result)) as { status: number; body: Record<string, unknown> };
}

async function focusedId(page: Page): Promise<string> {
  return String(await page.evaluate('document.activeElement?.id ?? ""'));
}

describe('operator console in Chromium (e2e)', function () {
  this.timeout(90_000);
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers[] = [];
  let browser: Browser | undefined;
  let admin: TestUser;
  let operator: TestUser;
  let user: TestUser;
  const contexts: BrowserContext[] = [];
  /** What the flows did, for the audit flow to find. */
  const done: { botId?: string; conversationId?: string; invitedId?: string } = {};

  const url = (): string => {
    if (api === undefined) throw new Error('the API is not running');
    return api.url;
  };
  const newPage = async (options: Parameters<typeof openBrowserPage>[2] = {}) => {
    if (browser === undefined) throw new Error('the browser is not running');
    return openBrowserPage(browser, contexts, options);
  };

  before(async function () {
    requireChromium(this);
    database = await createTestDatabase();
    const port = await freePort();
    const config = apiTestConfig(database.url, {
      LOG_LEVEL: 'error',
      BOTSERVER_PORT: String(port),
      BOTSERVER_ALLOWED_ORIGINS: `http://127.0.0.1:${port}`,
      // The e-mail form's connection test reaches the local Dovecot only.
      BOTSERVER_FEATURES: 'email',
      BOTSERVER_EGRESS_ALLOW: 'loopback',
    });
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = [await startWorkers(config, 'reply', { queuePrefix: prefix }), await startWorkers(config, 'audit', { queuePrefix: prefix })];
    browser = await launchBrowser();
    admin = await createTestUser(config, { role: 'admin' });
    operator = await createTestUser(config, { role: 'operator' });
    user = await createTestUser(config, { role: 'user' });
  });

  after(async () => {
    for (const context of contexts) await context.close().catch(() => undefined);
    await browser?.close();
    for (const running of workers) await running.shutdown();
    await api?.stop();
    await database?.destroy();
  });

  it('an operator creates a bot with rules in the console, sees a refused rule marked, tries it, chats with it, and deletes it after confirmation', async () => {
    const { page, problems } = await newPage();
    await signIn(page, url(), operator);
    expect(await page.locator('#console-nav').isVisible(), 'staff see the console').to.equal(true);
    expect(await page.locator('#nav-users').isVisible(), 'Users is for admins').to.equal(false);
    expect(await page.locator('#nav-audit').isVisible(), 'Audit is for admins').to.equal(false);

    await page.locator('#nav-bots').click();
    await page.locator('#view-console-bots').waitFor({ state: 'visible' });
    expect(await focusedId(page), 'the screen heading takes the focus').to.equal('console-bots-title');
    expect(await page.locator('#nav-bots').getAttribute('aria-current')).to.equal('page');
    await page.locator('#bot-new-link').click();
    await page.locator('#view-bot-edit').waitFor({ state: 'visible' });

    await page.locator('#bot-name').fill('Opening hours');
    await page.locator('#bot-greeting').fill('Hello! Ask me about our opening hours.');
    const rows = page.locator('#rule-list .rule-row');
    await page.locator('#rule-add').click();
    expect(await focusedId(page), 'a new rule takes the focus').to.match(/-match$/);
    await rows.nth(0).getByLabel('When the message contains').fill('/(unclosed/');
    await rows.nth(0).getByLabel('Reply').fill('never');
    await page.locator('#rule-add').click();
    await rows.nth(1).getByLabel('When the message contains').fill('opening hours');
    await rows.nth(1).getByLabel('Reply').fill('We open at 9.');
    await page.locator('#rule-add').click();
    await rows.nth(2).getByLabel('When the message contains').fill('a person');
    await rows.nth(2).getByLabel('Reply').fill('Someone will be with you shortly.');
    await rows.nth(2).getByLabel('Then hand the conversation over to a person').check();

    // The server refuses the regex: its message is shown in the summary and next to the rule, which takes the focus.
    await page.locator('#bot-save').click();
    await page.locator('#bot-form-error', { hasText: 'rules.0.match' }).waitFor();
    const refused = rows.nth(0).getByLabel('When the message contains');
    expect(await refused.getAttribute('aria-invalid')).to.equal('true');
    expect(await rows.nth(0).locator('.field-error').textContent()).to.include('not a valid regular expression');
    expect(await focusedId(page)).to.equal(await refused.getAttribute('id'));
    await saveScreenshot(page, 'console-bot-refused-rule');

    // The broken rule goes; the hours rule moves to the top (its focus stays on the button pressed).
    await rows.nth(0).getByRole('button', { name: 'Remove rule 1' }).click();
    await rows.nth(1).getByRole('button', { name: 'Move rule 2 up' }).click();
    expect(await rows.locator('legend').allTextContents()).to.deep.equal(['Rule 1', 'Rule 2']);
    expect(await rows.nth(0).getByLabel('When the message contains').inputValue()).to.equal('a person');
    await rows.nth(1).getByRole('button', { name: 'Move rule 2 up' }).click();
    expect(await rows.nth(0).getByLabel('When the message contains').inputValue()).to.equal('opening hours');

    const created = page.waitForResponse((response) => response.request().method() === 'POST' && new URL(response.url()).pathname === '/api/bots');
    await page.locator('#bot-save').click();
    const bot = (await (await created).json()) as { id: string };
    done.botId = bot.id;
    await page.waitForURL(`**/#/bots/${bot.id}`);
    await page.locator('#bot-extras').waitFor({ state: 'visible' });
    expect(await page.locator('#bot-edit-title').textContent()).to.equal('Bot “Opening hours”');
    await page.locator('#bot-knowledge[data-state="feature-disabled"]').waitFor({ state: 'attached' });
    expect(await page.locator('#bot-knowledge').isHidden(), 'no knowledge panel without the vectordb feature').to.equal(true);
    const stored = await fetchAsPage(page, `/api/bots/${bot.id}`);
    expect(stored.body.rules).to.deep.equal([
      { match: 'opening hours', reply: 'We open at 9.' },
      { match: 'a person', reply: 'Someone will be with you shortly.', handoff: true },
    ]);

    await page.locator('#try-input').fill('What are your opening hours?');
    await page.locator('#try-input').press('Enter');
    await page.locator('#try-result', { hasText: 'Rule 1 answers' }).waitFor();
    expect(await page.locator('#try-result blockquote').textContent()).to.equal('We open at 9.');
    await page.locator('#try-input').fill('Can I talk to a person?');
    await page.locator('#try-submit').click();
    await page.locator('#try-result', { hasText: 'waits for a person' }).waitFor();
    await page.locator('#try-input').fill('Nothing in particular');
    await page.locator('#try-submit').click();
    await page.locator('#try-result', { hasText: 'No rule matches' }).waitFor();
    await saveScreenshot(page, 'console-bot-editor');

    // The e-mail channel's connection test runs when it is saved; its failure is shown by the form.
    await page.locator('#email-imap-host').fill('127.0.0.1');
    await page.locator('#email-imap-port').fill(String(DOVECOT_IMAP_PORT));
    await page.locator('#email-imap-secure').uncheck();
    await page.locator('#email-imap-user').fill('nobody@example.test');
    await page.locator('#email-imap-pass').fill('not the password');
    await page.locator('#email-smtp-host').fill('127.0.0.1');
    await page.locator('#email-smtp-port').fill('2525');
    await page.locator('#email-smtp-secure').uncheck();
    await page.locator('#email-smtp-user').fill('nobody@example.test');
    await page.locator('#email-smtp-pass').fill('not the password');
    await page.locator('#email-address').fill('hours@example.test');
    await page.locator('#email-save').click();
    const emailError = page.locator('#email-error', { hasText: 'The channel was not saved' });
    await emailError.waitFor({ timeout: 20_000 });
    expect(await emailError.textContent()).to.include('auth_failed');
    expect(await page.locator('#email-imap-pass').inputValue(), 'a refused password is not kept in the page').to.equal('');
    expect(await page.locator('#email-state').textContent()).to.include('No e-mail channel');
    await saveScreenshot(page, 'console-bot-email-refused');

    await page.locator('#nav-bots').click();
    await page.locator(`#console-bot-rows tr[data-bot-id="${bot.id}"]`).waitFor();
    await saveScreenshot(page, 'console-bots');

    await page.locator('#nav-chat').click();
    await page.locator('#view-bots').waitFor({ state: 'visible' });
    await page.locator('#bot-list button', { hasText: 'Opening hours' }).click();
    await page.locator('#connection-status[data-state="online"]').waitFor();
    await text(page, '#message-list', 'bot', 'Hello! Ask me about our opening hours.').waitFor();
    await page.locator('#compose-input').fill('opening hours on Monday?');
    await page.locator('#compose-input').press('Enter');
    await text(page, '#message-list', 'bot', 'We open at 9.').waitFor();
    await saveScreenshot(page, 'console-chat');

    // Deleting asks first; Cancel keeps the bot.
    await page.locator('#nav-bots').click();
    const listed = page.locator(`#console-bot-rows tr[data-bot-id="${bot.id}"]`);
    await listed.getByRole('button', { name: 'Delete Opening hours' }).click();
    await page.locator('#confirm-dialog[open]').waitFor();
    expect(await focusedId(page), 'the safe choice has the focus').to.equal('confirm-cancel');
    await page.locator('#confirm-cancel').click();
    expect(await listed.count()).to.equal(1);
    expect(await page.evaluate('document.activeElement?.getAttribute("aria-label")'), 'the focus returns to the button').to.equal('Delete Opening hours');
    await listed.getByRole('button', { name: 'Delete Opening hours' }).click();
    await page.locator('#confirm-ok').click();
    await page.locator('#console-bots-empty').waitFor({ state: 'visible' });
    expect((await fetchAsPage(page, `/api/bots/${bot.id}`)).status).to.equal(404);
    expect(problems).to.deep.equal([]);
  });

  it('an operator takes over a guest conversation from the console, answers, then hands it back to the bot', async () => {
    const { accessToken } = await loginTokens({ url: url() }, admin);
    const front = await postJson(`${url()}/api/bots`, { name: 'Front desk', public: true, greeting: 'Welcome! Ask about our hours.', rules: [{ match: 'hours', reply: 'We are open from 9 to 5.' }] }, { authorization: `Bearer ${accessToken}` });
    expect(front.status).to.equal(201);
    const botId = String(front.body.id);

    const console = await newPage();
    await signIn(console.page, url(), operator);
    expect(await console.page.locator('#nav-waiting').isHidden(), 'nobody is waiting yet').to.equal(true);

    const visitor = await newPage();
    const tokenResponse = visitor.page.waitForResponse((response) => response.url().endsWith(`/api/bots/${botId}/guest-token`));
    await visitor.page.goto(`${url()}/?bot=${botId}`);
    const { conversationId } = (await (await tokenResponse).json()) as { conversationId: string };
    done.conversationId = conversationId;
    const visitorLog = '#message-list';
    await text(visitor.page, visitorLog, 'bot', 'Welcome! Ask about our hours.').waitFor();
    await visitor.page.locator('#connection-status[data-state="online"]').waitFor();
    await visitor.page.locator('#handoff-button').click();
    await event(visitor.page, visitorLog, 'Waiting for a person…').waitFor();
    expect(await visitor.page.locator('#handoff-button').isHidden()).to.equal(true);

    // The console hears of it at once: the badge counts the waiting conversation.
    await console.page.locator('#nav-waiting-count', { hasText: '1' }).waitFor();
    await console.page.locator('#nav-conversations').click();
    await console.page.locator('#view-conversations').waitFor({ state: 'visible' });
    const row = console.page.locator(`#conversation-rows tr[data-conversation-id="${conversationId}"]`);
    await row.waitFor();
    expect(await row.getAttribute('data-status')).to.equal('waiting');
    expect(await row.textContent()).to.include('Front desk');
    expect(await row.textContent()).to.include('Guest');
    await console.page.locator('#conversation-status-filter').selectOption('waiting');
    await console.page.locator('#conversations-status', { hasText: '1 conversation shown' }).waitFor();
    await saveScreenshot(console.page, 'console-conversations');

    await row.getByRole('link', { name: /Open the conversation/ }).click();
    await console.page.locator('#view-conversation').waitFor({ state: 'visible' });
    expect(await focusedId(console.page)).to.equal('live-title');
    const liveLog = '#live-message-list';
    await console.page.locator('#live-connection-status[data-state="online"]').waitFor();
    await text(console.page, liveLog, 'bot', 'Welcome! Ask about our hours.').waitFor();
    expect(await console.page.locator('#live-handoff-state').textContent()).to.equal('Waiting for a person');
    expect(await console.page.locator('#live-compose-form').isHidden(), 'no writing before taking over').to.equal(true);

    await console.page.locator('#take-over-button').click();
    await console.page.locator('#live-compose-form').waitFor({ state: 'visible' });
    expect(await focusedId(console.page)).to.equal('live-compose-input');
    await event(visitor.page, visitorLog, 'A person has joined').waitFor();
    await console.page.locator('#live-compose-input').fill('Hello, I am Ann from support.');
    await console.page.locator('#live-compose-input').press('Enter');
    const fromOperator = visitor.page.locator(`${visitorLog} .message.operator`, { hasText: 'Hello, I am Ann from support.' });
    await fromOperator.waitFor();
    expect(await fromOperator.locator('.message-author').textContent()).to.equal('Operator');

    // While the operator has it, the bot stays silent.
    await visitor.page.locator('#compose-input').fill('What are your hours?');
    await visitor.page.locator('#compose-input').press('Enter');
    await text(console.page, liveLog, 'user', 'What are your hours?').waitFor();
    await saveScreenshot(console.page, 'console-live-conversation');

    await console.page.locator('#hand-back-button').click();
    await event(visitor.page, visitorLog, 'The bot is back').waitFor();
    await console.page.locator('#take-over-button').waitFor({ state: 'visible' });
    expect(await console.page.locator('#live-compose-form').isHidden()).to.equal(true);
    await visitor.page.locator('#compose-input').fill('And your hours again?');
    await visitor.page.locator('#compose-input').press('Enter');
    await text(visitor.page, visitorLog, 'bot', 'We are open from 9 to 5.').waitFor();
    await text(console.page, liveLog, 'bot', 'We are open from 9 to 5.').waitFor();
    await saveScreenshot(visitor.page, 'visitor-after-handoff');

    const stored = await fetchAsPage(console.page, `/api/conversations/${conversationId}/messages`);
    const lines = (stored.body.messages as Array<{ role: string; text: string }>).map((message) => `${message.role}: ${message.text}`);
    expect(lines).to.deep.equal([
      'bot: Welcome! Ask about our hours.',
      'operator: Hello, I am Ann from support.',
      'user: What are your hours?',
      'user: And your hours again?',
      'bot: We are open from 9 to 5.',
    ]);
    expect(await visitor.page.locator(`${visitorLog} .message.bot`, { hasText: 'We are open from 9 to 5.' }).count(), 'one answer, to the message after the hand-back').to.equal(1);
    expect(console.problems).to.deep.equal([]);
    expect(visitor.problems).to.deep.equal([]);
  });

  it('an admin invites a user, who signs in with the one-time password and must change it; the admin changes the role, ends the sessions, disables and enables', async () => {
    const adminPage = await newPage({ permissions: ['clipboard-read', 'clipboard-write'] });
    const { page } = adminPage;
    await signIn(page, url(), admin);
    await page.locator('#nav-users').click();
    await page.locator('#view-users').waitFor({ state: 'visible' });
    expect(await focusedId(page)).to.equal('users-title');

    const email = `invited-${Date.now()}@example.test`;
    const invited = page.waitForResponse((response) => response.request().method() === 'POST' && new URL(response.url()).pathname === '/api/users');
    const inviteForm = page.locator('#invite-form');
    await inviteForm.getByLabel('E-mail').fill(email);
    await inviteForm.getByLabel('Role').selectOption('user');
    await page.locator('#invite-submit').click();
    const created = (await (await invited).json()) as { id: string; password: string };
    done.invitedId = created.id;
    await page.locator('#invite-result').waitFor({ state: 'visible' });
    expect(await page.locator('#invite-result-email').textContent()).to.equal(email);
    const password = await page.locator('#invite-password').inputValue();
    expect(password).to.equal(created.password);
    await page.locator('#invite-copy').click();
    await page.locator('#invite-copy-status', { hasText: 'Copied' }).waitFor();
    expect(await page.evaluate('navigator.clipboard.readText()')).to.equal(password);
    const invitedRow = page.locator(`#user-rows tr[data-user-id="${created.id}"]`);
    expect(await invitedRow.textContent()).to.include('One-time password');
    await saveScreenshot(page, 'console-users-invite');
    await page.locator('#invite-done').click();
    expect(await page.locator('#invite-result').isHidden()).to.equal(true);
    expect(await page.locator('#invite-password').inputValue(), 'the password leaves the page').to.equal('');

    const newcomer = await newPage();
    await newcomer.page.goto(url());
    await newcomer.page.locator('#login-email').fill(email);
    await newcomer.page.locator('#login-password').fill(password);
    await newcomer.page.locator('#login-submit').click();
    await newcomer.page.locator('#view-password').waitFor({ state: 'visible' });
    await newcomer.page.locator('#password-current').fill(password);
    await newcomer.page.locator('#password-new').fill('a passphrase of my own');
    await newcomer.page.locator('#password-confirm').fill('a passphrase of my own');
    await newcomer.page.locator('#password-submit').click();
    await newcomer.page.locator('#view-bots').waitFor({ state: 'visible' });
    expect(await newcomer.page.locator('#console-nav').isHidden()).to.equal(true);

    await page.locator('#nav-users').click();
    await invitedRow.getByRole('cell', { name: 'Own password' }).waitFor();
    await invitedRow.getByLabel(`Role of ${email}`, { exact: true }).selectOption('operator');
    await invitedRow.getByRole('button', { name: `Change the role of ${email}` }).click();
    await page.locator('#users-status', { hasText: `${email} is now Operator` }).waitFor();

    await invitedRow.getByRole('button', { name: `End all sessions of ${email}` }).click();
    await page.locator('#confirm-dialog[open]').waitFor();
    await saveScreenshot(page, 'console-users-confirm');
    await page.locator('#confirm-ok').click();
    await page.locator('#users-status', { hasText: `Every session of ${email} has ended` }).waitFor();
    expect((await fetchAsPage(newcomer.page, '/api/me')).status, 'the newcomer is signed out').to.equal(401);

    await invitedRow.getByRole('button', { name: `Disable ${email}` }).click();
    await page.locator('#confirm-ok').click();
    await invitedRow.getByRole('cell', { name: 'Disabled', exact: true }).waitFor();
    await invitedRow.getByRole('button', { name: `Enable ${email}` }).click();
    await invitedRow.getByRole('cell', { name: 'Active', exact: true }).waitFor();

    // An admin cannot disable or demote themself from here.
    const own = page.locator(`#user-rows tr[data-user-id="${admin.id}"]`);
    expect(await own.getByLabel(`Role of ${admin.email}`, { exact: true }).isDisabled()).to.equal(true);
    expect(await own.getByRole('button', { name: `Disable ${admin.email}` }).isDisabled()).to.equal(true);
    expect(adminPage.problems).to.deep.equal([]);
    expect(newcomer.problems).to.deep.equal([]);
  });

  it('the audit view shows those actions, filters them, and verifying the chain reports it intact', async () => {
    const { invitedId, conversationId } = done;
    if (invitedId === undefined || conversationId === undefined) throw new Error('the earlier flows did not run');
    const { page, problems } = await newPage();
    await signIn(page, url(), admin);
    await page.locator('#nav-audit').click();
    await page.locator('#view-audit').waitFor({ state: 'visible' });
    expect(await focusedId(page)).to.equal('audit-title');

    // Events reach the chain through the audit queue: show again until they are there.
    const rowFor = (target: string, type: string) => page.locator(`#audit-rows tr[data-type="${type}"]`, { has: page.getByRole('cell', { name: target, exact: true }) });
    await page.locator('#audit-type').fill('config.change');
    await waitFor(async () => {
      await page.locator('#audit-apply').click();
      await page.locator('#audit-status', { hasText: 'event' }).waitFor();
      return (await rowFor(`user:${invitedId}`, 'config.change').count()) >= 2 ? true : undefined;
    }, 'the invitation and the role change in the audit trail');
    const changes = (await rowFor(`user:${invitedId}`, 'config.change').allTextContents()).join('\n');
    expect(changes).to.include('user_created');
    expect(changes).to.include('operator');
    expect(await page.locator('#audit-rows tr:not([data-type="config.change"])').count(), 'the filter holds').to.equal(0);

    await page.locator('#audit-type').fill('admin.action');
    await waitFor(async () => {
      await page.locator('#audit-apply').click();
      await page.locator('#audit-status', { hasText: 'event' }).waitFor();
      return (await rowFor(`conversation:${conversationId}`, 'admin.action').count()) >= 2 ? true : undefined;
    }, 'the takeover and hand-back in the audit trail');
    const handoff = await rowFor(`conversation:${conversationId}`, 'admin.action').allTextContents();
    expect(handoff.join('\n')).to.include('handoff_started').and.to.include('handoff_ended');

    await page.locator('#audit-verify-button').click();
    await page.locator('#audit-verify-result[data-state="ok"]').waitFor({ timeout: 30_000 });
    expect(await page.locator('#audit-verify-result').textContent()).to.match(/^Chain intact: \d+ events checked/);
    await saveScreenshot(page, 'console-audit');

    // A bad filter is refused by the server and shown next to the field.
    await page.locator('#audit-type').fill('Not A Type');
    await page.locator('#audit-apply').click();
    await page.locator('#audit-error', { hasText: 'type' }).waitFor();
    expect(await page.locator('#audit-type').getAttribute('aria-invalid')).to.equal('true');
    expect(problems).to.deep.equal([]);
  });

  it('a user sees none of the console, cannot reach it by address, and every console API answers 403', async () => {
    const { page, problems } = await newPage();
    await signIn(page, url(), user);
    expect(await page.locator('#console-nav').isHidden()).to.equal(true);
    await page.goto(`${url()}/#/users`);
    await page.locator('#view-bots').waitFor({ state: 'visible' });
    expect(await page.locator('#view-users').isHidden()).to.equal(true);
    await page.goto(`${url()}/#/conversations`);
    await page.locator('#view-bots').waitFor({ state: 'visible' });
    expect(await page.locator('#view-conversations').isHidden()).to.equal(true);
    for (const path of ['/api/conversations', '/api/users', '/api/audit', `/api/bots/${done.botId ?? '00000000-0000-4000-8000-000000000000'}`]) {
      expect((await fetchAsPage(page, path)).status, path).to.equal(403);
    }
    await saveScreenshot(page, 'user-no-console');
    expect(problems).to.deep.equal([]);
  });
});
