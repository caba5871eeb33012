import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Config } from '../../shared/config/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { restOk, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addMailUser, channelFor, deliver, ensureMailServer, mailDir, startSmtpPeer, startTestEmailWorker, type MailUser, type SmtpPeer } from '../helpers/mail.js';
import { childEnv, REPO_ROOT, waitFor } from '../helpers/process.js';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'email-worker.ts');

describe('e-mail bot: exactly once across restarts, crashes and UIDVALIDITY changes', function () {
  this.timeout(180_000);
  let database: TestDatabase;
  let config: Config;
  let prefix: string;
  let api: TestApi;
  let replyWorkers: RunningWorkers;
  let smtp: SmtpPeer;
  let admin: SignedInUser;
  const children = new Set<ChildProcess>();

  before(async function () {
    ensureMailServer();
    database = await createTestDatabase();
    prefix = uniqueQueuePrefix();
    config = apiTestConfig(database.url, { BOTSERVER_FEATURES: 'email', BOTSERVER_JOB_LOCK_MS: '2000' });
    api = await startTestApi(config, prefix);
    replyWorkers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    smtp = await startSmtpPeer();
    admin = await signedInUser(api, 'admin', 'email-resilience');
  });

  after(async function () {
    for (const child of children) child.kill('SIGKILL');
    await signOutAll();
    await replyWorkers?.shutdown();
    await smtp?.stop();
    if (api !== undefined) {
      for (const name of ['bot-reply', 'email-outbound', 'audit'] as const) await api.kernel.queues.queue(name).obliterate({ force: true });
      await api.stop();
    }
    await database?.destroy();
  });

  /** A bot with its own mailbox that answers everything, and a correspondent. */
  async function mailBot(): Promise<{ bot: MailUser; sender: MailUser; botId: string }> {
    const bot = addMailUser('bot');
    const sender = addMailUser('sender');
    const created = await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'Mail bot', rules: [{ match: 'mail', reply: 'Got your mail' }], email: channelFor(bot, smtp.port, { maxRepliesPerSenderPerHour: 10_000 }) } });
    return { bot, sender, botId: String(created.id) };
  }

  /** Replies the SMTP peer received for mail of `sender`, by the Message-ID they answer. */
  function repliesFor(sender: MailUser): Map<string, number> {
    const counts = new Map<string, number>();
    for (const message of smtp.messages) {
      if (!message.to.includes(sender.address)) continue;
      const key = String(message.parsed.inReplyTo);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  async function deliverMany(bot: MailUser, sender: MailUser, count: number, tag: string): Promise<void> {
    for (let start = 0; start < count; start += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, count - start) }, (_, i) =>
          deliver({ from: sender.address, to: bot.address, subject: `Mail ${tag} ${start + i}`, text: 'a mail for the bot', messageId: `<${tag}-${start + i}@sender.example>` }),
        ),
      );
    }
  }

  async function expectAnsweredOnce(sender: MailUser, count: number, timeoutMs = 90_000): Promise<void> {
    await waitFor(() => repliesFor(sender).size >= count, timeoutMs, 200);
    await new Promise((resolve) => setTimeout(resolve, 2500)); // time for any duplicate to show up
    const counts = repliesFor(sender);
    expect(counts.size).to.equal(count);
    expect([...counts.values()].filter((n) => n !== 1)).to.deep.equal([]);
  }

  function startChild(crash: string | undefined): { child: ChildProcess; exited: Promise<NodeJS.Signals | null> } {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
      env: childEnv({
        DATABASE_URL: config.databaseUrl,
        REDIS_URL: config.redisUrl,
        BOTSERVER_JWT_SECRET: config.secrets.jwtSecret,
        BOTSERVER_ENCRYPTION_KEY: config.secrets.encryptionKey,
        DATABASE_ENCRYPTION_KEY: config.secrets.databaseEncryptionKey,
        BOTSERVER_FEATURES: 'email',
        BOTSERVER_JOB_LOCK_MS: '2000',
        LOG_LEVEL: 'error',
        TEST_QUEUE_PREFIX: prefix,
        BOTSERVER_TEST_EMAIL_CRASH: crash,
      }),
    });
    children.add(child);
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => {
      children.delete(child);
      resolve(signal);
    }));
    return { child, exited };
  }

  it('a restart with 200 unread mails answers each once; another restart sends nothing more', async () => {
    const { bot, sender } = await mailBot();
    await deliverMany(bot, sender, 200, 'backlog');
    const worker = startTestEmailWorker(config, prefix);
    try {
      await expectAnsweredOnce(sender, 200);
    } finally {
      await worker.stop();
    }
    const again = startTestEmailWorker(config, prefix);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await again.stop();
    expect([...repliesFor(sender).values()].reduce((a, b) => a + b, 0)).to.equal(200);
  });

  it('two e-mail workers (own kernels and Redis connections) share the mailboxes by lease; when one stops, the other takes its mailboxes over', async () => {
    const bots = await Promise.all(Array.from({ length: 4 }, () => mailBot()));
    const first = startTestEmailWorker(config, prefix);
    const second = startTestEmailWorker(config, prefix);
    try {
      for (const { bot, sender } of bots) await deliverMany(bot, sender, 2, 'shared');
      for (const { sender } of bots) await expectAnsweredOnce(sender, 2, 30_000);
      const redis = api.kernel.redis;
      const owners = await Promise.all(bots.map(({ botId }) => redis.get(`${prefix}:email:lease:${botId}`)));
      expect(owners.every((owner) => owner !== null)).to.equal(true);
      await first.stop();
      for (const { bot, sender } of bots) await deliverMany(bot, sender, 1, 'shared-after');
      for (const { sender } of bots) await expectAnsweredOnce(sender, 3, 30_000);
    } finally {
      await first.stop();
      await second.stop();
    }
  });

  it('a UIDVALIDITY change (Dovecot re-numbers the mailbox) causes no duplicate answers', async () => {
    const { bot, sender, botId } = await mailBot();
    const worker = startTestEmailWorker(config, prefix);
    await deliverMany(bot, sender, 5, 'uidv');
    await expectAnsweredOnce(sender, 5);
    await worker.stop();
    const before = (await database.ownerDb('email_mailboxes').where({ bot_id: botId }).first()) as { uid_validity: string };
    // Dovecot forgets UIDs when its uidlist and indexes go: the mailbox gets a new UIDVALIDITY.
    const [local = '', domain = ''] = bot.address.split('@');
    const maildir = join(mailDir(), domain, local, 'Maildir');
    for (const name of ['dovecot-uidlist', 'dovecot-uidvalidity', 'dovecot.index', 'dovecot.index.cache', 'dovecot.index.log', 'dovecot.list.index', 'dovecot.list.index.log']) rmSync(join(maildir, name), { force: true });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const restarted = startTestEmailWorker(config, prefix);
    try {
      const after = await waitFor(async () => {
        const row = (await database.ownerDb('email_mailboxes').where({ bot_id: botId }).first()) as { uid_validity: string };
        return row.uid_validity !== before.uid_validity ? row : undefined;
      }, 20_000, 200);
      expect(after.uid_validity).not.to.equal(before.uid_validity);
      await deliverMany(bot, sender, 1, 'uidv-after');
      await expectAnsweredOnce(sender, 6);
    } finally {
      await restarted.stop();
    }
  });

  for (const crash of ['inbound-after-fetch', 'inbound-after-store'] as const) {
    it(`kill -9 of the inbound worker (${crash}): every mail is answered exactly once after another worker takes over`, async () => {
      const { bot, sender } = await mailBot();
      const { exited } = startChild(crash);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await deliverMany(bot, sender, 10, crash);
      expect(await exited).to.equal('SIGKILL');
      const worker = startTestEmailWorker(config, prefix);
      try {
        await expectAnsweredOnce(sender, 10);
      } finally {
        await worker.stop();
      }
    });
  }

  it('kill -9 of the outbound worker after the SMTP server accepted: the retried job sends no second reply', async () => {
    const { bot, sender, botId } = await mailBot();
    const { exited } = startChild('outbound-after-accept');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await deliverMany(bot, sender, 1, 'outbound-crash');
    expect(await exited).to.equal('SIGKILL');
    expect(repliesFor(sender).size).to.equal(1);
    const reply = await database.ownerDb('messages').join('conversations', 'conversations.id', 'messages.conversation_id').where({ 'conversations.bot_id': botId, 'messages.role': 'bot' }).first<{ id: string }>('messages.id');
    const job = await api.kernel.queues.queue('email-outbound').getJob(reply.id);
    if (job === undefined) throw new Error('no email-outbound job');
    expect(await job.getState()).to.equal('active'); // its worker died holding it
    const worker = startTestEmailWorker(config, prefix);
    try {
      // The stalled job is taken over and completes without sending.
      await waitFor(async () => ((await job.getState()) === 'completed' ? true : undefined), 30_000, 200);
      await expectAnsweredOnce(sender, 1);
    } finally {
      await worker.stop();
    }
  });
});
