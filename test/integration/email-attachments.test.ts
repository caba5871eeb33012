import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Config } from '../../shared/config/index.js';
import { EMBEDDED_IMAGE_MIN_BYTES } from '../../shared/email/attachments.js';
import { FileStaging } from '../../shared/files/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { restOk, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { download, elfExecutable, TINY_PNG, waitForStored } from '../helpers/files.js';
import { addMailUser, channelFor, deliver, ensureMailServer, startSmtpPeer, startTestEmailWorker, type MailUser, type SmtpPeer } from '../helpers/mail.js';
import { childEnv, sharedSettingsEnv, REPO_ROOT, waitFor } from '../helpers/process.js';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'email-worker.ts');
const MAX_UPLOAD = 64 * 1024;

/** A small PDF (the type sniffer knows it by its `%PDF-` magic) whose text holds `marker`. */
function pdfWith(marker: string): Buffer {
  return Buffer.from(`%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n% ${marker}\ntrailer << /Root 1 0 R >>\n%%EOF\n`, 'latin1');
}

/** A PNG of `size` bytes: a valid 1×1 image followed by random bytes (the sniffer reads the magic only). */
function pngOf(size: number): Buffer {
  return Buffer.concat([TINY_PNG, randomBytes(size - TINY_PNG.length)]);
}

interface ListedMessage {
  messageId: string;
  role: string;
  text: string;
  attachments?: Array<{ id: string; name: string; size: number; type: string }>;
}

describe('e-mail bot: attachments of inbound mail become files of the message', function () {
  this.timeout(120_000);
  let database: TestDatabase;
  let config: Config;
  let prefix: string;
  let api: TestApi;
  let workers: RunningWorkers[] = [];
  let emailWorker: { stop(): Promise<void> } | undefined;
  let smtp: SmtpPeer;
  let admin: SignedInUser;
  let bot: MailUser;
  let sender: MailUser;
  let botId: string;
  const children = new Set<ChildProcess>();

  before(async function () {
    ensureMailServer();
    database = await createTestDatabase();
    prefix = uniqueQueuePrefix();
    config = apiTestConfig(database.url, { BOTSERVER_FEATURES: 'email', BOTSERVER_MAX_UPLOAD_SIZE: String(MAX_UPLOAD), BOTSERVER_JOB_LOCK_MS: '2000' });
    api = await startTestApi(config, prefix);
    workers = [await startWorkers(config, 'reply', { queuePrefix: prefix }), await startWorkers(config, 'files', { queuePrefix: prefix })];
    emailWorker = startTestEmailWorker(config, prefix);
    smtp = await startSmtpPeer();
    admin = await signedInUser(api, 'admin', 'email-attachments');
    bot = addMailUser('bot');
    sender = addMailUser('alice');
    const created = await restOk('POST', `${api.url}/api/bots`, 201, {
      token: admin.token,
      body: { name: 'Mail bot', rules: [{ match: 'files', reply: 'Thanks for the files' }], email: channelFor(bot, smtp.port, { maxRepliesPerSenderPerHour: 10_000 }) },
    });
    botId = String(created.id);
  });

  after(async function () {
    for (const child of children) child.kill('SIGKILL');
    await signOutAll();
    await emailWorker?.stop();
    for (const running of workers) await running.shutdown();
    await smtp?.stop();
    if (api !== undefined) {
      for (const name of ['bot-reply', 'email-outbound', 'file-encrypt', 'audit'] as const) await api.kernel.queues.queue(name).obliterate({ force: true });
      await api.stop();
    }
    await database?.destroy();
  });

  /** Replies the SMTP peer received, by the Message-ID they answer. */
  function repliesTo(messageId: string): number {
    return smtp.messages.filter((message) => message.parsed.inReplyTo === messageId).length;
  }

  /** The inbound (user) messages of the bot's e-mail conversations, as an admin of the tenant lists them. */
  async function inboundMessages(): Promise<ListedMessage[]> {
    const conversations = await database.ownerDb('conversations').where({ bot_id: botId, channel: 'email' }).orderBy('created_at').pluck<string[]>('id');
    const found: ListedMessage[] = [];
    for (const id of conversations) {
      const body = await restOk('GET', `${api.url}/api/conversations/${id}/messages`, 200, { token: admin.token });
      found.push(...(body.messages as ListedMessage[]).filter((message) => message.role === 'user'));
    }
    return found;
  }

  async function emailFileCount(): Promise<number> {
    const [row] = await database.ownerDb('files').where({ source: 'email' }).count<Array<{ count: string }>>('* as count');
    return Number(row?.count ?? 0);
  }

  const pdf = pdfWith(`report-${randomBytes(6).toString('hex')}`);
  const notes = Buffer.from('Meeting notes\nfirst line\nsecond line\n', 'utf8');
  const screenshot = pngOf(EMBEDDED_IMAGE_MIN_BYTES + 4096);
  const first = '<with-files-1@alice.example>';

  function mailWithFiles(messageId: string): Parameters<typeof deliver>[0] {
    return {
      from: { name: 'Alice', address: sender.address },
      to: bot.address,
      subject: 'The files',
      messageId,
      text: 'files attached',
      html: '<p>files attached</p><img src="cid:logo@alice"><p>see:</p><img src="cid:shot@alice">',
      attachments: [
        { filename: 'logo.png', content: TINY_PNG, cid: 'logo@alice' }, // a signature logo: skipped
        { filename: 'screenshot.png', content: screenshot, cid: 'shot@alice' }, // a pasted screenshot: kept
        { filename: 'report.pdf', content: pdf, contentType: 'application/pdf' },
        { filename: 'invoice.pdf', content: elfExecutable(), contentType: 'application/pdf' }, // an executable, whatever its name: skipped
        { filename: 'big.txt', content: Buffer.alloc(MAX_UPLOAD + 1, 'a'), contentType: 'text/plain' }, // too large: skipped
        { filename: '../../etc/notes.txt', content: notes, contentType: 'text/plain' },
      ],
    };
  }

  it('stores the allowed attachments (in order) with the message; executables, oversized parts and inline logos are skipped', async () => {
    await deliver(mailWithFiles(first));
    await waitFor(() => repliesTo(first) === 1, 30_000, 200);
    const inbound = await inboundMessages();
    expect(inbound).to.have.length(1);
    const [message] = inbound;
    expect(message?.text).to.equal('files attached');
    const attachments = message?.attachments ?? [];
    expect(attachments.map(({ name, size, type }) => ({ name, size, type }))).to.deep.equal([
      { name: 'screenshot.png', size: screenshot.length, type: 'image/png' },
      { name: 'report.pdf', size: pdf.length, type: 'application/pdf' },
      { name: 'notes.txt', size: notes.length, type: 'text/plain' },
    ]);
    const rows = await database.ownerDb('files').whereIn('id', attachments.map((file) => file.id)).select<Array<{ owner_id: string | null; source: string }>>('owner_id', 'source');
    expect(rows).to.have.length(3);
    expect(rows.every((row) => row.owner_id === null && row.source === 'email')).to.equal(true);
    expect(await emailFileCount()).to.equal(3);

    const expected = [screenshot, pdf, notes];
    for (const [index, file] of attachments.entries()) {
      expect(await waitForStored(api.url, admin.token, file.id)).to.include({ status: 'stored', source: 'email', name: file.name });
      const content = await download(api.url, admin.token, file.id);
      expect(content.status).to.equal(200);
      expect(content.body.equals(expected[index] ?? Buffer.alloc(0)), file.name).to.equal(true);
    }
    // Nothing stays in the staging folder once the files are stored.
    await waitFor(async () => (await new FileStaging(config.dataDir).list()).length === 0, 10_000, 100);
  });

  it('a mail fetched again (same Message-ID) gets no second message and no second set of files', async () => {
    const before = await emailFileCount();
    await deliver(mailWithFiles(first));
    // Mail is handled in UID order: once the next one is answered, the repeat was handled.
    const next = '<after-repeat-2@alice.example>';
    await deliver({ from: sender.address, to: bot.address, subject: 'Another', text: 'files? none this time', messageId: next });
    await waitFor(() => repliesTo(next) === 1, 30_000, 200);
    expect(repliesTo(first)).to.equal(1);
    expect(await emailFileCount()).to.equal(before);
    const inbound = await inboundMessages();
    expect(inbound).to.have.length(2);
    expect(inbound.map((message) => message.attachments?.length ?? 0)).to.deep.equal([3, 0]);
  });

  it('kill -9 after the mail is stored, before its file job is queued: the next worker queues it, the file is stored once', async () => {
    await emailWorker?.stop();
    emailWorker = undefined;
    const marker = `secret-${randomBytes(6).toString('hex')}`;
    const name = `${marker}.pdf`;
    const content = pdfWith(marker);
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv({
        ...sharedSettingsEnv(config),
        BOTSERVER_FEATURES: 'email',
        BOTSERVER_MAX_UPLOAD_SIZE: String(MAX_UPLOAD),
        BOTSERVER_JOB_LOCK_MS: '2000',
        LOG_LEVEL: 'debug',
        TEST_QUEUE_PREFIX: prefix,
        BOTSERVER_TEST_EMAIL_CRASH: 'inbound-after-store',
      }),
    });
    children.add(child);
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, signal) => {
        children.delete(child);
        resolve(signal);
      }),
    );
    await waitFor(() => output.includes('email worker ready'), 20_000, 100);
    const messageId = '<crash-3@alice.example>';
    await deliver({ from: sender.address, to: bot.address, subject: 'Crash', text: 'files after a crash', messageId, attachments: [{ filename: name, content }] });
    expect(await exited).to.equal('SIGKILL');
    // The child logged at debug level: counts, never the attachment's name or content.
    expect(output).to.not.include(marker);

    const stored = (await inboundMessages()).find((message) => message.text === 'files after a crash');
    const fileId = stored?.attachments?.[0]?.id;
    if (fileId === undefined) throw new Error('the crashed worker did not store the mail with its attachment');
    expect(await api.kernel.queues.queue('file-encrypt').getJob(fileId)).to.equal(undefined);
    expect((await database.ownerDb('files').where({ id: fileId }).first<{ status: string }>('status'))?.status).to.equal('pending');

    emailWorker = startTestEmailWorker(config, prefix);
    expect(await waitForStored(api.url, admin.token, fileId)).to.include({ status: 'stored', name });
    expect((await download(api.url, admin.token, fileId)).body.equals(content)).to.equal(true);
    await waitFor(() => repliesTo(messageId) === 1, 30_000, 200);
    const inbound = await inboundMessages();
    expect(inbound.filter((message) => message.text === 'files after a crash')).to.have.length(1);
    expect(await emailFileCount()).to.equal(4);
  });
});
