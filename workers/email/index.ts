import { ImapSessions, SmtpPools } from '../../adapters/mail/index.js';
import type { Kernel } from '../../shared/kernel.js';
import { log } from '../../shared/log/index.js';
import { MailboxLeases } from './leases.js';
import { DEFAULT_EMAIL_OPTIONS, type EmailWorkerOptions } from './options.js';
import { sendEmailReply } from './send-reply.js';

export { DEFAULT_EMAIL_OPTIONS, type EmailWorkerOptions } from './options.js';

/** The `email` worker family: inbound (IMAP watchers under leases) and outbound (the email-outbound queue). */
export function startEmailWorker(kernel: Kernel, options: Partial<EmailWorkerOptions> = {}): void {
  if (!kernel.config.features.has('email')) {
    log.info('email worker family idle: the email feature is not enabled (BOTSERVER_FEATURES)');
    return;
  }
  const settings = { ...DEFAULT_EMAIL_OPTIONS, ...options };
  const connections = { smtp: new SmtpPools(kernel.egress), imap: new ImapSessions(kernel.egress) };
  kernel.queues.worker(
    'email-outbound',
    async (data, job) => {
      // A job that ran before (an error, or its worker died holding it) may have been sent already.
      const retried = job.attemptsMade > 0 || job.attemptsStarted > 1;
      const result = await sendEmailReply(kernel, connections, data, retried);
      if (result === 'already') log.info('email reply already in Sent: not sent again', { jobId: job.id });
    },
    { concurrency: 20 },
  );
  const inbound = new MailboxLeases(kernel, settings);
  inbound.start();
  // The kernel closes the queues; the watchers must stop (and release their leases) before that.
  const close = kernel.close.bind(kernel);
  kernel.close = async () => {
    await inbound.stop();
    await close();
    connections.smtp.closeAll();
    connections.imap.closeAll();
  };
}
