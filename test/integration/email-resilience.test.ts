import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Config } from '../../shared/config/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { apiTestConfig, startTestApi, startTestAuditWorker, type TestApi } from '../helpers/api.js';
import { restJson, restOk, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addMailUser, channelFor, deliver, ensureMailServer, mailDir, startSmtpPeer, startTestEmailWorker, type MailUser, type SmtpPeer } from '../helpers/mail.js';
import { waitFor } from '../helpers/process.js';

const METRICS_TOKEN = 'email-resilience-metrics-token-0123456789';

describe('e-mail bot: exactly once across restarts and UIDVALIDITY changes; poison mail quarantined; the reply limit', function () {
  this.timeout(180_000);
  let database: TestDatabase;
  let config: Config;
  let prefix: string;
  let api: TestApi;
  let replyWorkers: RunningWorkers;
  let auditWorkers: RunningWorkers;
  let smtp: SmtpPeer;
  let admin: SignedInUser;

  before(async function () {
    ensureMailServer();
    database = await createTestDatabase();
    prefix = uniqueQueuePrefix();
    config = apiTestConfig(database.url, { BOTSERVER_FEATURES: 'email', BOTSERVER_JOB_LOCK_MS: '2000', BOTSERVER_METRICS_TOKEN: METRICS_TOKEN });
    api = await startTestApi(config, prefix);
    replyWorkers = await startWorkers(config, 'reply', { queuePrefix: prefix });
    auditWorkers = await startTestAuditWorker(config, prefix);
    smtp = await startSmtpPeer();
    admin = await signedInUser(api, 'admin', 'email-resilience');
  });

  after(async function () {
    await signOutAll();
    await replyWorkers?.shutdown();
    await auditWorkers?.shutdown();
    await smtp?.stop();
    if (api !== undefined) {
      for (const name of ['bot-reply', 'email-outbound', 'audit'] as const) await api.kernel.queues.queue(name).obliterate({ force: true });
      await api.stop();
    }
    await database?.destroy();
  });

  /** A bot with its own mailbox that answers everything, and a correspondent. */
  async function mailBot(maxRepliesPerSenderPerHour = 10_000): Promise<{ bot: MailUser; sender: MailUser; botId: string }> {
    const bot = addMailUser('bot');
    const sender = addMailUser('sender');
    // Adding a mailbox blocks this process for a moment (doveadm): let kept-alive HTTP connections that lapsed
    // meanwhile close before the next request, or it may go out on one the server is closing.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const created = await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'Mail bot', rules: [{ match: 'mail', reply: 'Got your mail' }], email: channelFor(bot, smtp.port, { maxRepliesPerSenderPerHour }) } });
    return { bot, sender, botId: String(created.id) };
  }

  /** Replies the SMTP peer received for mail of `sender` (or sent by `bot`), by the Message-ID they answer. */
  function repliesFor(party: { address: string }, side: 'to' | 'from' = 'to'): Map<string, number> {
    const counts = new Map<string, number>();
    for (const message of smtp.messages) {
      if (side === 'to' ? !message.to.includes(party.address) : message.from !== party.address) continue;
      const key = String(message.parsed.inReplyTo);
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return counts;
  }

  /** `count` mails to the bot, from the senders in turn, 20 at a time. */
  async function deliverMany(bot: MailUser, senders: { address: string } | ReadonlyArray<{ address: string }>, count: number, tag: string): Promise<void> {
    const from = Array.isArray(senders) ? (senders as ReadonlyArray<{ address: string }>) : [senders as { address: string }];
    for (let start = 0; start < count; start += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, count - start) }, (_, i) =>
          deliver({ from: from[(start + i) % from.length]?.address ?? '', to: bot.address, subject: `Mail ${tag} ${start + i}`, text: 'a mail for the bot', messageId: `<${tag}-${start + i}@sender.example>` }),
        ),
      );
    }
  }

  async function expectAnsweredOnce(party: { address: string }, count: number, timeoutMs = 90_000, side: 'to' | 'from' = 'to'): Promise<void> {
    await waitFor(() => repliesFor(party, side).size >= count, timeoutMs, 200);
    await new Promise((resolve) => setTimeout(resolve, 2500)); // time for any duplicate to show up
    const counts = repliesFor(party, side);
    expect(counts.size).to.equal(count);
    expect([...counts.values()].filter((n) => n !== 1)).to.deep.equal([]);
  }

  it('a restart with 500 unread mails from 500 senders answers each once; another restart sends nothing more', async () => {
    const { bot } = await mailBot(1);
    const senders = Array.from({ length: 500 }, (_, index) => ({ address: `backlog-${index}@sender.example` }));
    await deliverMany(bot, senders, 500, 'backlog');
    const worker = startTestEmailWorker(config, prefix);
    try {
      await expectAnsweredOnce(bot, 500, 120_000, 'from');
    } finally {
      await worker.stop();
    }
    const again = startTestEmailWorker(config, prefix);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await again.stop();
    expect([...repliesFor(bot, 'from').values()].reduce((a, b) => a + b, 0)).to.equal(500);
  });

  it('two e-mail workers (own kernels and Redis connections) share the mailboxes by lease; when one stops, the other takes its mailboxes over', async () => {
    const bots = await Promise.all(Array.from({ length: 4 }, () => mailBot()));
    const first = startTestEmailWorker(config, prefix);
    const second = startTestEmailWorker(config, prefix);
    try {
      for (const { bot, sender } of bots) await deliverMany(bot, sender, 2, 'shared');
      await Promise.all(bots.map(({ sender }) => expectAnsweredOnce(sender, 2, 30_000)));
      const redis = api.kernel.redis;
      const owners = await Promise.all(bots.map(({ botId }) => redis.get(`${prefix}:email:lease:${botId}`)));
      expect(owners.every((owner) => owner !== null)).to.equal(true);
      await first.stop();
      for (const { bot, sender } of bots) await deliverMany(bot, sender, 1, 'shared-after');
      await Promise.all(bots.map(({ sender }) => expectAnsweredOnce(sender, 3, 30_000)));
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

  /** A counter of /metrics (0 when absent). */
  async function metric(name: string, labels: string): Promise<number> {
    const response = await fetch(`${api.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    const text = await response.text();
    const line = text.split('\n').find((entry) => entry.startsWith(`${name}{${labels}} `));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  }

  it('a mail that fails on every attempt is quarantined after 3 tries, the mail behind it is answered; the API and /metrics show it', async () => {
    const { bot, sender, botId } = await mailBot();
    const before = await metric('botserver_email_quarantined_total', 'reason="failed"');
    const worker = startTestEmailWorker(config, prefix, {
      inboundFault: (source) => {
        if (source.includes('POISON-MARKER')) throw new Error('a mail this worker cannot handle');
      },
    });
    try {
      await deliver({ from: sender.address, to: bot.address, subject: 'Poison', text: 'POISON-MARKER in this mail', messageId: '<poison-1@sender.example>' });
      await deliver({ from: sender.address, to: bot.address, subject: 'Behind it', text: 'a mail for the bot', messageId: '<behind-poison-1@sender.example>' });
      await expectAnsweredOnce(sender, 1, 30_000);
      expect(repliesFor(sender).has('<behind-poison-1@sender.example>')).to.equal(true);
      const listed = await restOk('GET', `${api.url}/api/bots/${botId}/email/quarantine`, 200, { token: admin.token });
      const mails = listed.mails as Array<Record<string, unknown>>;
      expect(mails).to.have.length(1);
      expect(mails[0]).to.include({ reason: 'failed', attempts: 3 });
      expect(mails[0]?.uid).to.be.a('number');
      expect(await metric('botserver_email_quarantined_total', 'reason="failed"')).to.equal(before + 1);
      // Another tenant's admin does not see the bot's quarantine.
      const stranger = await signedInUser(api, 'admin', 'email-resilience-other');
      expect((await restJson('GET', `${api.url}/api/bots/${botId}/email/quarantine`, { token: stranger.token })).status).to.equal(404);
    } finally {
      await worker.stop();
    }
  });

  it('a mail over the size limit is quarantined (too_large) without being fetched; the mailbox goes on', async () => {
    const { bot, sender, botId } = await mailBot();
    const worker = startTestEmailWorker(config, prefix, { maxMailBytes: 4000 });
    try {
      await deliver({ from: sender.address, to: bot.address, subject: 'Large', text: 'x'.repeat(8000), messageId: '<large-1@sender.example>' });
      await deliver({ from: sender.address, to: bot.address, subject: 'Small', text: 'a mail for the bot', messageId: '<small-1@sender.example>' });
      await expectAnsweredOnce(sender, 1, 30_000);
      expect(repliesFor(sender).has('<small-1@sender.example>')).to.equal(true);
      const listed = await restOk('GET', `${api.url}/api/bots/${botId}/email/quarantine`, 200, { token: admin.token });
      expect(listed.mails).to.have.length(1);
      expect((listed.mails as Array<Record<string, unknown>>)[0]).to.include({ reason: 'too_large', attempts: 0 });
      expect(Number((listed.mails as Array<Record<string, unknown>>)[0]?.size)).to.be.greaterThan(4000);
    } finally {
      await worker.stop();
    }
  });

  it('answers at most maxRepliesPerSenderPerHour mails of a correspondent: the rest are counted in /metrics, the first refusal is audited once', async () => {
    const { bot, sender, botId } = await mailBot(2);
    const other = { address: `other-${botId.slice(0, 8)}@sender.example` };
    const before = await metric('botserver_email_replies_refused_total', 'reason="reply_limit"');
    const worker = startTestEmailWorker(config, prefix);
    try {
      await deliverMany(bot, sender, 5, `limit-${botId.slice(0, 8)}`);
      await deliverMany(bot, other, 1, `limit-other-${botId.slice(0, 8)}`);
      await expectAnsweredOnce(other, 1, 30_000);
      await expectAnsweredOnce(sender, 2, 30_000);
      expect(await metric('botserver_email_replies_refused_total', 'reason="reply_limit"')).to.equal(before + 3);
      const refusals = (): Promise<Array<{ details: Record<string, unknown> }>> =>
        database.ownerDb('audit_events').where({ type: 'security.violation', target: `bot:${botId}` }).whereRaw("details->>'violation' = 'email_reply_limit'").select('details');
      const audited = await waitFor(async () => ((await refusals()).length > 0 ? refusals() : undefined), 20_000, 200);
      expect(audited).to.have.length(1);
      expect(audited[0]?.details).to.include({ limit: 2 });
      expect(String(audited[0]?.details.correspondent)).to.match(/^[0-9a-f]{64}$/);
      expect(JSON.stringify(audited)).not.to.include(sender.address);
    } finally {
      await worker.stop();
    }
  });
});
