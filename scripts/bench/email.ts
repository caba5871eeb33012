import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { configureProcessLogging } from '../../shared/kernel.js';
import { apiTestConfig, startTestApi, type TestApi } from '../../test/helpers/api.js';
import { restOk, signedInUser, signOutAll } from '../../test/helpers/chat.js';
import { uniqueQueuePrefix } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { addMailUser, channelFor, deliver, ensureMailServer, startSmtpPeer, startTestEmailWorker, type SmtpPeer } from '../../test/helpers/mail.js';
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

function parseArgs(args: string[]): { mails: number; senders: number } | undefined {
  const values: Record<string, number> = { '--mails': DEFAULT_MAILS, '--senders': DEFAULT_SENDERS };
  for (let index = 0; index < args.length; index += 2) {
    const [flag, value] = [args[index] ?? '', args[index + 1]];
    if (!Object.hasOwn(values, flag) || value === undefined || !/^\d+$/.test(value)) return undefined;
    values[flag] = Number(value);
  }
  const mails = values['--mails'] ?? DEFAULT_MAILS;
  const senders = values['--senders'] ?? DEFAULT_SENDERS;
  return mails >= 1 && mails <= 100_000 && senders >= 1 && senders <= Math.min(mails, 1000) ? { mails, senders } : undefined;
}

export async function run(args: string[]): Promise<number> {
  const options = parseArgs(args);
  if (options === undefined) {
    process.stderr.write(`usage: npm run bench -- email [--mails N (default ${DEFAULT_MAILS})] [--senders S (default ${DEFAULT_SENDERS})]\n`);
    return 2;
  }
  const { mails, senders: senderCount } = options;
  ensureMailServer();
  let database: TestDatabase | undefined;
  let api: TestApi | undefined;
  let workers: RunningWorkers | undefined;
  let email: { stop(): Promise<void> } | undefined;
  let smtp: SmtpPeer | undefined;
  try {
    database = await createTestDatabase();
    const config = apiTestConfig(database.url, { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn', BOTSERVER_FEATURES: 'email' });
    configureProcessLogging(config, 'botserver-bench');
    const prefix = uniqueQueuePrefix();
    api = await startTestApi(config, prefix);
    workers = await startWorkers(config, 'reply', { queuePrefix: prefix });
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
    email = startTestEmailWorker(config, prefix, { pollMs: 30_000 });

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
    await smtp.waitFor(mails, Math.max(120_000, mails * 500));
    const wallMs = Math.max(...smtp.messages.map((message) => message.receivedAt)) - started;
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
    await email.stop();
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
        `email benchmark  node ${process.version}, ${availableParallelism()} CPU(s); Dovecot (LMTP in, IMAP IDLE), API, reply and e-mail workers and the SMTP peer on this machine`,
        `mails ${mails} from ${senderCount} senders  replies ${result.replies}  duplicates ${duplicates}  delivered in ${result.deliverSeconds} s  answered in ${result.wallSeconds} s  ${result.mailsPerSecond} mails/s`,
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
    await workers?.shutdown();
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
