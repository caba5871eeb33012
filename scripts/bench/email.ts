import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { configureProcessLogging } from '../../shared/kernel.js';
import { apiTestConfig, startTestApi, type TestApi } from '../../test/helpers/api.js';
import { restOk, signedInUser, signOutAll } from '../../test/helpers/chat.js';
import { uniqueQueuePrefix } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { addMailUser, channelFor, deliver, ensureMailServer, startSmtpPeer, startTestEmailWorker, type SmtpPeer } from '../../test/helpers/mail.js';
import type { Config } from '../../shared/config/index.js';
import { freePort, sharedSettingsEnv, startCli, waitForHttpOk, type RunningCli } from '../../test/helpers/process.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { bareMailPipeline } from './emailBare.js';
import { percentile, round1 } from './stats.js';

/**
 * E-mail benchmark: N mails from S senders delivered over LMTP into a bot's Dovecot mailbox (20 at a time), answered
 * through the real path (IMAP IDLE → PostgreSQL → bot-reply → email-outbound → SMTP → APPEND to Sent) by an API, a
 * reply worker and an e-mail worker in this process; an in-process SMTP server records each reply. Latency: from the
 * end of a mail's LMTP delivery to the SMTP server accepting its reply. Throughput: mails answered per second of wall
 * time from the first delivery. Beside it, the bare engines' figure on the same mails (see emailBare.ts).
 */

const DEFAULT_MAILS = 1000;
const DEFAULT_SENDERS = 100;

interface BenchOptions {
  mails: number;
  senders: number;
  /** The reply and e-mail workers as their own processes (as deployed), not in this one. */
  processes: boolean;
  /** All mails delivered before the e-mail worker starts (a restart with a full INBOX). */
  backlog: boolean;
}

function parseArgs(args: string[]): BenchOptions | undefined {
  const values: Record<string, number> = { '--mails': DEFAULT_MAILS, '--senders': DEFAULT_SENDERS };
  const switches = ['--processes', '--backlog'];
  const rest = args.filter((arg) => !switches.includes(arg));
  for (let index = 0; index < rest.length; index += 2) {
    const [flag, value] = [rest[index] ?? '', rest[index + 1]];
    if (!Object.hasOwn(values, flag) || value === undefined || !/^\d+$/.test(value)) return undefined;
    values[flag] = Number(value);
  }
  const mails = values['--mails'] ?? DEFAULT_MAILS;
  const senders = values['--senders'] ?? DEFAULT_SENDERS;
  const [processes, backlog] = switches.map((name) => args.includes(name));
  return mails >= 1 && mails <= 100_000 && senders >= 1 && senders <= Math.min(mails, 1000) ? { mails, senders, processes: processes === true, backlog: backlog === true } : undefined;
}

/** `botserver worker <family>` as its own process on the bench's database, Redis and queue prefix; resolves once ready. */
async function startWorkerProcess(family: 'reply' | 'email', config: Config, prefix: string): Promise<RunningCli> {
  const port = await freePort();
  const cli = startCli(['worker', family], { ...sharedSettingsEnv(config), BOTSERVER_FEATURES: 'email', BOTSERVER_QUEUE_PREFIX: prefix, BOTSERVER_HEALTH_PORT: String(port), LOG_LEVEL: 'warn' });
  await waitForHttpOk(cli, `http://127.0.0.1:${port}/readyz`, 120_000);
  return cli;
}

export async function run(args: string[]): Promise<number> {
  const options = parseArgs(args);
  if (options === undefined) {
    process.stderr.write(`usage: npm run bench -- email [--mails N (default ${DEFAULT_MAILS})] [--senders S (default ${DEFAULT_SENDERS})] [--processes] [--backlog]\n`);
    return 2;
  }
  const { mails, senders: senderCount, processes, backlog } = options;
  ensureMailServer();
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers | RunningCli | undefined;
  let email: { stop(): Promise<unknown> } | undefined;
  let smtp: SmtpPeer | undefined;
  try {
    database = await createTestDatabase();
    const config = apiTestConfig(database.url, { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', BOTSERVER_FEATURES: 'email' });
    configureProcessLogging(config, 'botserver-bench');
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = processes ? await startWorkerProcess('reply', config, prefix) : await startWorkers(config, 'reply', { queuePrefix: prefix });
    smtp = await startSmtpPeer();
    const admin = await signedInUser(api, 'admin');
    const bot = addMailUser('bench-bot');
    // Adding a mailbox blocks this process for a moment: let lapsed kept-alive HTTP connections close first.
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Senders need no mailbox: replies are recorded by the SMTP peer, not delivered.
    const senders = Array.from({ length: senderCount }, (_, index) => ({ address: `bench-sender-${index}@sender.example` }));
    await restOk('POST', `${api.url}/api/bots`, 201, {
      token: admin.token,
      body: { name: 'Bench mail bot', rules: [{ match: 'opening hours', reply: 'We open at 9.' }], email: channelFor(bot, smtp.port, { maxRepliesPerSenderPerHour: 10_000 }) },
    });
    const startEmail = async (): Promise<{ stop(): Promise<unknown> }> => (processes ? startWorkerProcess('email', config, prefix) : startTestEmailWorker(config, prefix, { pollMs: 30_000 }));
    if (!backlog) email = await startEmail();

    const deliveredAt = new Map<string, number>();
    const started = performance.now();
    for (let start = 0; start < mails; start += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, mails - start) }, async (_, offset) => {
          const id = `bench-${start + offset}@sender.example`;
          const sender = senders[(start + offset) % senders.length] ?? senders[0];
          if (sender === undefined) throw new Error('no sender');
          await deliver({ from: sender.address, to: bot.address, subject: `Question ${start + offset}`, text: 'What are your opening hours?', messageId: `<${id}>` });
          deliveredAt.set(`<${id}>`, performance.now());
        }),
      );
    }
    const deliveredMs = performance.now() - started;
    // With a backlog, every mail is inbound from the moment the worker is up: time and latency count from there.
    const counted = backlog ? performance.now() : started;
    if (backlog) {
      email = await startEmail();
      for (const key of deliveredAt.keys()) deliveredAt.set(key, counted);
    }
    await smtp.waitFor(mails, Math.max(120_000, mails * 500));
    const wallMs = Math.max(...smtp.messages.map((message) => message.receivedAt)) - counted;
    const latencies: number[] = [];
    const answered = new Map<string, number>();
    for (const message of smtp.messages) {
      const key = String(message.parsed.inReplyTo);
      answered.set(key, (answered.get(key) ?? 0) + 1);
      const sent = deliveredAt.get(key);
      if (sent !== undefined) latencies.push(message.receivedAt - sent);
    }
    const duplicates = [...answered.values()].filter((count) => count > 1).length;
    const result = {
      bench: 'email',
      node: process.version,
      cpus: availableParallelism(),
      mails,
      senders: senderCount,
      workers: processes ? 'processes' : 'in-process',
      backlog,
      replies: smtp.messages.length,
      duplicates,
      deliverSeconds: round1(deliveredMs / 1000),
      wallSeconds: round1(wallMs / 1000),
      mailsPerSecond: round1(mails / (wallMs / 1000)),
      latencyP50Ms: round1(percentile(latencies, 50)),
      latencyP90Ms: round1(percentile(latencies, 90)),
      latencyP99Ms: round1(percentile(latencies, 99)),
      latencyMaxMs: round1(Math.max(...latencies)),
      bareMailsPerSecond: 0,
    };
    // The bare engines on the same mails: IMAP fetch, parse, compose, pooled SMTP, APPEND, nothing else.
    await email?.stop();
    email = undefined;
    const bareSmtp = await startSmtpPeer();
    try {
      const bare = await bareMailPipeline(bot, bareSmtp.port);
      result.bareMailsPerSecond = round1(bare.mails / bare.seconds);
    } finally {
      await bareSmtp.stop();
    }
    process.stdout.write(
      [
        `email benchmark  node ${process.version}, ${availableParallelism()} CPU(s); Dovecot (LMTP in, IMAP IDLE), API, SMTP peer and ${processes ? 'reply and e-mail worker processes' : 'reply and e-mail workers in one process'} on this machine`,
        `mails ${mails} from ${senderCount} senders  replies ${result.replies}  duplicates ${duplicates}  delivered in ${result.deliverSeconds} s  answered in ${result.wallSeconds} s ${backlog ? 'after the worker started (backlog)' : 'from the first delivery'}  ${result.mailsPerSecond} mails/s`,
        `inbound-to-reply latency  p50 ${result.latencyP50Ms} ms  p90 ${result.latencyP90Ms} ms  p99 ${result.latencyP99Ms} ms  max ${result.latencyMaxMs} ms`,
        `bare engines (one IMAP FETCH, mailparser, nodemailer pool of 5, APPEND; no database, queue or bot)  ${result.bareMailsPerSecond} mails/s`,
        JSON.stringify(result),
        '',
      ].join('\n'),
    );
    return duplicates === 0 && result.replies === mails ? 0 : 1;
  } finally {
    await signOutAll();
    await email?.stop();
    if (workers !== undefined) await ('shutdown' in workers ? workers.shutdown() : workers.stop());
    await smtp?.stop();
    if (api !== undefined) {
      for (const name of ['bot-reply', 'email-outbound', 'audit'] as const) {
        await api.kernel.queues
          .queue(name)
          .obliterate({ force: true })
          .catch((error: unknown) => process.stderr.write(`bench cleanup (${name} queue): ${String(error)}\n`));
      }
      await api.stop();
    }
    await database?.destroy();
  }
}
