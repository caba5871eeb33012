import { expect } from 'chai';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { restOk, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addMailUser, channelFor, deliver, deliverRaw, ensureMailServer, readSent, startSmtpPeer, startTestEmailWorker, waitForInbox, type MailboxMessage, type MailUser, type SmtpPeer } from '../helpers/mail.js';
import { waitFor } from '../helpers/process.js';

const header = (message: MailboxMessage, name: string): string | undefined => {
  const value = message.parsed.headers.get(name);
  return value === undefined ? undefined : typeof value === 'string' ? value : JSON.stringify(value);
};

describe('e-mail bot: IMAP in, SMTP out, threaded and loop-safe', function () {
  this.timeout(90_000);
  let database: TestDatabase;
  let api: TestApi;
  let replyWorkers: RunningWorkers;
  let emailWorker: { stop(): Promise<void> };
  let smtp: SmtpPeer;
  let admin: SignedInUser;
  let bot: MailUser;
  let sender: MailUser;
  let botId: string;

  before(async function () {
    ensureMailServer();
    database = await createTestDatabase();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, { BOTSERVER_FEATURES: 'email' });
    api = await startTestApi(config, prefix);
    replyWorkers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    emailWorker = startTestEmailWorker(config, prefix);
    smtp = await startSmtpPeer({ relay: true });
    admin = await signedInUser(api, 'admin', 'email-flow');
    bot = addMailUser('bot');
    sender = addMailUser('alice');
    const created = await restOk('POST', `${api.url}/api/bots`, 201, {
      token: admin.token,
      body: { name: 'Mail bot', rules: [{ match: 'hello', reply: 'Hi from the bot' }, { match: 'again', reply: 'Still here' }], email: channelFor(bot, smtp.port) },
    });
    botId = String(created.id);
  });

  after(async function () {
    await signOutAll();
    await emailWorker?.stop();
    await replyWorkers?.shutdown();
    await smtp?.stop();
    if (api !== undefined) {
      for (const name of ['bot-reply', 'email-outbound', 'audit'] as const) await api.kernel.queues.queue(name).obliterate({ force: true });
      await api.stop();
    }
    await database?.destroy();
  });

  /** The bot's e-mail conversations, comma-separated (one while a single thread exists). */
  async function botConversations(): Promise<string> {
    const rows = await database.ownerDb('conversations').where({ bot_id: botId, channel: 'email' }).select('id');
    return rows.map((row: { id: string }) => row.id).join(',');
  }

  it('answers a mail with a threaded reply from the bot address; a reply to that reply stays in the same conversation', async () => {
    await deliver({ from: { name: 'Alice', address: sender.address }, to: bot.address, subject: 'Question', text: 'hello there\n\n-- \nAlice\nSignature line', messageId: '<first-1@alice.example>' });
    const inbox = await waitForInbox(sender, (messages) => messages.length >= 1);
    expect(inbox).to.have.length(1);
    const reply = inbox[0] as MailboxMessage;
    expect(reply.parsed.text?.trim()).to.equal('Hi from the bot');
    expect(reply.parsed.from?.value[0]?.address).to.equal(bot.address);
    expect(reply.parsed.subject).to.equal('Re: Question');
    expect(reply.parsed.inReplyTo).to.equal('<first-1@alice.example>');
    expect(reply.parsed.references).to.equal('<first-1@alice.example>');
    expect(header(reply, 'auto-submitted')).to.equal('auto-replied');
    expect(reply.parsed.messageId).to.be.a('string').and.not.equal('<first-1@alice.example>');
    expect(smtp.messages.at(-1)?.to).to.deep.equal([sender.address]);
    const conversations = await botConversations();
    // The Message-ID is the bot message's id at the bot's domain; the same message is kept in the bot's Sent folder, read.
    const botMessage = await database.ownerDb('messages').where({ conversation_id: conversations, role: 'bot' }).first<{ id: string }>('id');
    expect(reply.parsed.messageId).to.equal(`<${botMessage?.id ?? ''}@${bot.address.split('@')[1] ?? ''}>`);
    const sent = await waitFor(async () => ((await readSent(bot)).length === 1 ? readSent(bot) : undefined), 10_000, 100);
    expect(sent[0]?.parsed.messageId).to.equal(reply.parsed.messageId);
    expect(sent[0]?.flags?.has('\\Seen')).to.equal(true);

    await deliver({ from: sender.address, to: bot.address, subject: 'Re: Question', text: 'again please\n\nOn Monday the bot wrote:\n> Hi from the bot', messageId: '<second-2@alice.example>', inReplyTo: reply.parsed.messageId, references: ['<first-1@alice.example>', String(reply.parsed.messageId)] });
    const both = await waitForInbox(sender, (messages) => messages.length >= 2);
    const second = both[1] as MailboxMessage;
    expect(second.parsed.text?.trim()).to.equal('Still here');
    expect(second.parsed.inReplyTo).to.equal('<second-2@alice.example>');
    expect(second.parsed.references).to.deep.equal(['<first-1@alice.example>', String(reply.parsed.messageId), '<second-2@alice.example>']);
    expect(await botConversations()).to.equal(conversations);
    const messages = await database.ownerDb('messages').where({ conversation_id: conversations }).orderBy('created_at').select('role', 'text_ciphertext');
    expect(messages.map((row: { role: string }) => row.role)).to.deep.equal(['user', 'bot', 'user', 'bot']);
    for (const row of messages as Array<{ text_ciphertext: string }>) expect(row.text_ciphertext).not.to.include('hello');
  });

  it('does not answer auto-replies, bulk or list mail, mailer-daemons or its own mail', async () => {
    const before = (await waitForInbox(sender, () => true)).length;
    const base = { to: bot.address, text: 'hello anyway' };
    await deliver({ ...base, from: sender.address, subject: 'Out of office', headers: { 'Auto-Submitted': 'auto-replied' } });
    await deliver({ ...base, from: sender.address, subject: 'Newsletter', headers: { Precedence: 'bulk' } });
    await deliver({ ...base, from: sender.address, subject: 'List post', headers: { 'List-Id': '<news.example.test>' } });
    await deliver({ ...base, from: sender.address, subject: 'Junk', headers: { Precedence: 'junk' } });
    await deliver({ ...base, from: `MAILER-DAEMON@example.test`, subject: 'Undelivered Mail' });
    await deliver({ ...base, from: bot.address, subject: 'My own' });
    // A normal mail after them: once it is answered, the others were handled (mail is processed in UID order).
    await deliver({ ...base, from: sender.address, subject: 'Normal', headers: { 'Auto-Submitted': 'no' } });
    const inbox = await waitForInbox(sender, (messages) => messages.length >= before + 1);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const after = await waitForInbox(sender, () => true);
    expect(after.map((message) => message.parsed.subject).slice(before)).to.deep.equal(['Re: Normal']);
    expect(inbox.at(-1)?.parsed.subject).to.equal('Re: Normal');
    expect(smtp.messages.every((message) => message.to.every((to) => to !== bot.address && !/mailer-daemon/i.test(to)))).to.equal(true);
  });

  it('header-injection strings in the subject and sender name add no header to the reply', async () => {
    const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
    const raw = [
      `From: =?UTF-8?B?${b64('Eve\r\nX-Injected-Name: yes\r\nBcc: victim@example.test')}?= <${sender.address}>`,
      `To: ${bot.address}`,
      `Subject: =?UTF-8?B?${b64('hello\r\nX-Injected-Subject: yes\r\nBcc: victim@example.test')}?=`,
      'Message-ID: <inject-1@alice.example>',
      'Date: Sat, 28 Nov 2026 10:00:00 +0000',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'hello injection',
      '',
    ].join('\r\n');
    const before = smtp.messages.length;
    await deliverRaw(sender.address, bot.address, raw);
    const sent = await smtp.waitFor(before + 1);
    const reply = sent[before];
    if (reply === undefined) throw new Error('no reply');
    expect(reply.to).to.deep.equal([sender.address]);
    const headerBlock = reply.raw.toString('utf8').split('\r\n\r\n')[0] ?? '';
    const names = headerBlock.split('\r\n').filter((line) => /^\S/.test(line)).map((line) => line.slice(0, line.indexOf(':')).toLowerCase());
    expect(names).not.to.include('x-injected-name');
    expect(names).not.to.include('x-injected-subject');
    expect(names).not.to.include('bcc');
    expect(names.filter((name) => name === 'to')).to.have.length(1);
    expect(reply.parsed.headers.has('x-injected-subject')).to.equal(false);
    expect(reply.parsed.inReplyTo).to.equal('<inject-1@alice.example>');
  });
});
