/**
 * Exactly once as the recipient sees it: an e-mail worker process killed with SIGKILL at five points, five times
 * each, against Dovecot and an SMTP peer. Every inbound mail must end with exactly one reply in the bot's Sent
 * folder (flagged \Seen) and at least one delivery, all deliveries of a mail carrying that reply's Message-ID.
 *
 * Each point runs as its own chain (own queue prefix, reply worker, SMTP peer and bot, the worker processes watching
 * only that bot), the five chains side by side. In a chain, process k+1 is started ahead of time and waits; once
 * process k is armed and killed, process k+1 goes, takes the mailbox (its lease lapses), recovers what k left
 * (stalled jobs come back after BOTSERVER_JOB_LOCK_MS) and is then armed itself. A sixth process finishes the chain.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { expect } from 'chai';
import type { Config } from '../../shared/config/index.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import type { CrashPoint } from '../../workers/email/crash-points.js';
import { apiTestConfig, startTestApi, type TestApi } from '../helpers/api.js';
import { restOk, signedInUser, signOutAll, type SignedInUser } from '../helpers/chat.js';
import { uniqueQueuePrefix } from '../helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { addMailUser, channelFor, deliver, ensureMailServer, readSent, SentFolderPoller, startSmtpPeer, type MailboxMessage, type MailUser, type SmtpPeer } from '../helpers/mail.js';
import { dropRedisKeys } from '../helpers/redis.js';
import { childEnv, REPO_ROOT, sharedSettingsEnv, waitFor } from '../helpers/process.js';

const FIXTURE = join(REPO_ROOT, 'test', 'fixtures', 'email-worker.ts');
const REPETITIONS = 5;
const JOB_LOCK_MS = '2000';
const LEASE_MS = 1500;

interface Point {
  title: string;
  /** The crash point the worker kills itself at; undefined: the test kills it while the SMTP peer stalls. */
  crash: CrashPoint | undefined;
  /** How many deliveries one mail may get: a crash after the SMTP acceptance, before the APPEND, sends it again. */
  deliveries: readonly number[];
  /** Mails per repetition: several where they are fetched and stored together, one where a reply is being sent. */
  mails: number;
}

const POINTS: readonly Point[] = [
  { title: 'after the fetch', crash: 'inbound-after-fetch', deliveries: [1], mails: 3 },
  { title: 'after the store', crash: 'inbound-after-store', deliveries: [1], mails: 3 },
  { title: 'during the SMTP DATA phase (the peer stalls before its final reply)', crash: undefined, deliveries: [2], mails: 1 },
  { title: 'after the SMTP server accepted and the reply was appended to Sent', crash: 'outbound-after-append', deliveries: [1], mails: 1 },
  { title: 'between the SMTP acceptance and the APPEND to Sent', crash: 'outbound-after-accept', deliveries: [2], mails: 1 },
];

interface WorkerProcess {
  child: ChildProcess;
  exited: Promise<NodeJS.Signals | null>;
  /** Lets the waiting process start its worker; resolves once it did. */
  go(): Promise<void>;
}

describe('e-mail bot: SIGKILL at five points, five times each: exactly one reply in Sent and at least one delivery per mail', function () {
  this.timeout(240_000);
  let database: TestDatabase;
  let config: Config;
  let api: TestApi;
  let admin: SignedInUser;
  const prefixes: string[] = [];
  const replyWorkers: RunningWorkers[] = [];
  const peers: SmtpPeer[] = [];
  const children = new Set<ChildProcess>();
  const prepared: Chain[] = [];

  before(async function () {
    ensureMailServer();
    database = await createTestDatabase();
    config = apiTestConfig(database.url, { BOTSERVER_FEATURES: 'email', BOTSERVER_JOB_LOCK_MS: JOB_LOCK_MS });
    const prefix = uniqueQueuePrefix();
    prefixes.push(prefix);
    api = await startTestApi(config, prefix);
    // Mailboxes first: adding one blocks this process for a moment (doveadm), long enough for a kept-alive HTTP
    // connection to lapse under it (see email-resilience's mailBot).
    const bots = POINTS.map(() => addMailUser('crash-bot'));
    admin = await signedInUser(api, 'admin', 'email-crash');
    for (const [index, point] of POINTS.entries()) prepared.push(await prepareChain(point, bots[index] ?? addMailUser('crash-bot')));
  });

  after(async function () {
    for (const child of children) child.kill('SIGKILL');
    await signOutAll();
    for (const workers of replyWorkers) await workers.shutdown();
    for (const peer of peers) await peer.stop();
    await api?.stop();
    if (config !== undefined) await dropRedisKeys(config.redisUrl, prefixes.map((prefix) => `${prefix}:*`));
    await database?.destroy();
  });

  function startProcess(prefix: string, botId: string, crash: CrashPoint | undefined): WorkerProcess {
    const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
      env: childEnv({
        ...sharedSettingsEnv(config),
        BOTSERVER_FEATURES: 'email',
        BOTSERVER_JOB_LOCK_MS: JOB_LOCK_MS,
        LOG_LEVEL: 'error',
        TEST_QUEUE_PREFIX: prefix,
        TEST_WAIT_FOR_GO: '1',
        TEST_EMAIL_OPTIONS: JSON.stringify({ leaseMs: LEASE_MS, onlyBots: [botId] }),
        BOTSERVER_TEST_EMAIL_CRASH: crash,
        BOTSERVER_TEST_EMAIL_CRASH_ARMED: '1',
      }),
    });
    children.add(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.once('exit', (_code, signal) => {
        children.delete(child);
        resolve(signal);
      }),
    );
    return {
      child,
      exited,
      async go() {
        await waitFor(() => output.includes('email worker loaded') || child.exitCode !== null, 60_000, 50);
        child.stdin?.write('go\n');
        await waitFor(() => output.includes('email worker ready') || child.exitCode !== null, 30_000, 50);
        if (child.exitCode !== null) throw new Error(`the e-mail worker process exited with ${child.exitCode}`);
      },
    };
  }

  /** The bot's Sent folder by the inbound Message-ID each copy answers. */
  async function sentByInbound(bot: MailUser): Promise<Map<string, MailboxMessage[]>> {
    const found = new Map<string, MailboxMessage[]>();
    for (const message of await readSent(bot)) {
      const key = String(message.parsed.inReplyTo);
      found.set(key, [...(found.get(key) ?? []), message]);
    }
    return found;
  }

  async function waitAnswered(poller: SentFolderPoller, inbound: readonly string[]): Promise<void> {
    await waitFor(async () => {
      const answered = await poller.inReplyTo(inbound.length);
      return answered !== undefined && inbound.every((id) => answered.includes(id));
    }, 60_000, 250);
  }

  /** One chain's own queue prefix (with a reply worker), SMTP peer and bot mailbox. */
  interface Chain {
    prefix: string;
    smtp: SmtpPeer;
    bot: MailUser;
    botId: string;
  }

  async function prepareChain(point: Point, bot: MailUser): Promise<Chain> {
    const prefix = uniqueQueuePrefix();
    prefixes.push(prefix);
    replyWorkers.push(await startWorkers(config, 'reply', { queuePrefix: prefix }));
    const smtp = await startSmtpPeer();
    peers.push(smtp);
    const created = await restOk('POST', `${api.url}/api/bots`, 201, {
      token: admin.token,
      body: { name: `Crash bot (${point.crash ?? 'stall'})`, rules: [{ match: 'mail', reply: 'Got your mail' }], email: channelFor(bot, smtp.port, { maxRepliesPerSenderPerHour: 10_000 }) },
    });
    return { prefix, smtp, bot, botId: String(created.id) };
  }

  async function runChain(point: Point, { prefix, smtp, bot, botId }: Chain): Promise<void> {
    const inbound: string[] = [];
    const poller = await SentFolderPoller.open(bot);
    let next = startProcess(prefix, botId, point.crash);
    for (let repetition = 0; repetition < REPETITIONS; repetition += 1) {
      const current = next;
      await current.go();
      next = startProcess(prefix, botId, point.crash);
      // The fresh process first recovers what its predecessor left.
      await waitAnswered(poller, inbound);
      const stalled = point.crash === undefined ? smtp.stallNext() : undefined;
      if (point.crash !== undefined) await api.kernel.redis.set(`${prefix}:test:email-crash`, point.crash);
      const ids = Array.from({ length: point.mails }, (_, index) => `<${point.crash ?? 'stall'}-${repetition}-${index}-${botId.slice(0, 8)}@sender.example>`);
      await Promise.all(ids.map((messageId, index) => deliver({ from: `correspondent-${index}@sender.example`, to: bot.address, subject: `Mail ${repetition}.${index}`, text: 'a mail for the bot', messageId })));
      inbound.push(...ids);
      if (stalled !== undefined) {
        await stalled.received;
        current.child.kill('SIGKILL');
        stalled.release();
      }
      expect(await current.exited, `repetition ${repetition + 1}`).to.equal('SIGKILL');
    }
    await next.go();
    try {
      await waitAnswered(poller, inbound);
      // Time for a duplicate to show up, in Sent or at the peer.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const sent = await sentByInbound(bot);
      expect([...sent.keys()].sort()).to.deep.equal([...inbound].sort());
      for (const id of inbound) {
        const copies = sent.get(id) ?? [];
        expect(copies, `copies in Sent of the reply to ${id}`).to.have.length(1);
        const [copy] = copies;
        expect(copy?.flags?.has('\\Seen'), `the Sent copy of the reply to ${id} is \\Seen`).to.equal(true);
        const delivered = smtp.messages.filter((message) => message.parsed.inReplyTo === id);
        expect(point.deliveries, `deliveries of the reply to ${id}`).to.include(delivered.length);
        expect(new Set(delivered.map((message) => message.parsed.messageId)), `Message-IDs delivered for ${id}`).to.deep.equal(new Set([copy?.parsed.messageId]));
      }
    } finally {
      await poller.close();
      next.child.kill('SIGTERM');
      await next.exited;
    }
  }

  // The chains run side by side (started by the first test); each point's test waits for its own chain.
  let chains: Array<Promise<void>> | undefined;
  for (const [index, point] of POINTS.entries()) {
    it(`SIGKILL ${point.title}, ${REPETITIONS} times`, async () => {
      chains ??= POINTS.map((each, position) => {
        const setup = prepared[position];
        const chain = setup === undefined ? Promise.reject(new Error('chain not prepared')) : runChain(each, setup);
        chain.catch(() => undefined); // awaited by its own test
        return chain;
      });
      await chains[index];
    });
  }
});
