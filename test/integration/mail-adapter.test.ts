import { expect } from 'chai';
import { ImapFlow } from 'imapflow';
import { composeReply, ImapMailbox, ImapSessions } from '../../adapters/mail/index.js';
import { EgressPolicy } from '../../shared/net/egress.js';
import { addMailUser, deliver, ensureMailServer, IMAP_PORT, readSent, type MailUser } from '../helpers/mail.js';

/** The IMAP side of the mail adapter against the private Dovecot: batched fetches, the Sent folder, the Message-ID search. */
describe('mail adapter: IMAP against Dovecot', function () {
  this.timeout(30_000);
  const egress = new EgressPolicy({ allow: ['loopback'] });
  const endpoint = (user: MailUser): { host: string; port: number; secure: boolean; user: string; pass: string } => ({ host: '127.0.0.1', port: IMAP_PORT, secure: false, user: user.address, pass: user.password });

  async function open(user: MailUser): Promise<ImapMailbox> {
    const destination = await egress.check({ host: '127.0.0.1', port: IMAP_PORT, protocol: 'imap', field: 'email.imap' });
    return ImapMailbox.connect(endpoint(user), destination);
  }

  before(() => ensureMailServer());

  it('lists new mails with their sizes and fetches a UID range in one go, in UID order', async () => {
    const user = addMailUser('adapter');
    for (let index = 0; index < 5; index += 1) await deliver({ from: 'someone@sender.example', to: user.address, subject: `Mail ${index}`, text: 'x'.repeat(100 * (index + 1)) });
    const mailbox = await open(user);
    try {
      await mailbox.openInbox();
      const listed = await mailbox.listAfter(0);
      expect(listed.map((entry) => entry.uid)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(listed.every((entry, index) => index === 0 || entry.size > (listed[index - 1]?.size ?? 0))).to.equal(true);
      expect(await mailbox.listAfter(5)).to.deep.equal([]);
      const fetched = await mailbox.fetchRange(2, 4);
      expect(fetched.map((mail) => mail.uid)).to.deep.equal([2, 3, 4]);
      expect(fetched[0]?.source.toString('utf8')).to.include('Subject: Mail 1');
    } finally {
      mailbox.close();
    }
  });

  it('keeps sent mail in the folder marked \\Sent ("Sent Items"), flagged \\Seen, and finds it by Message-ID', async () => {
    const user = addMailUser('adapter');
    const setup = new ImapFlow({ host: '127.0.0.1', port: IMAP_PORT, secure: false, auth: { user: user.address, pass: user.password }, logger: false });
    await setup.connect();
    await setup.mailboxCreate('Sent Items');
    await setup.logout();
    const mailbox = await open(user);
    try {
      expect(await mailbox.sentFolder()).to.equal('Sent Items');
      const reply = await composeReply({ from: { name: '', address: user.address }, to: { name: 'Alice', address: 'alice@sender.example' }, subject: 'Re: hi', text: 'hello', messageId: '<reply-1@example.test>', inReplyTo: '<hi-1@sender.example>', references: ['<hi-1@sender.example>'] });
      expect(await mailbox.holdsMessageId('Sent Items', '<reply-1@example.test>')).to.equal(false);
      await mailbox.appendSeen('Sent Items', reply.raw);
      expect(await mailbox.holdsMessageId('Sent Items', '<reply-1@example.test>')).to.equal(true);
      expect(await mailbox.holdsMessageId('Sent Items', '<reply-2@example.test>')).to.equal(false);
      const sent = await readSent(user);
      expect(sent).to.have.length(1);
      expect(sent[0]?.flags?.has('\\Seen')).to.equal(true);
      expect(sent[0]?.parsed.messageId).to.equal('<reply-1@example.test>');
      expect(sent[0]?.parsed.headers.get('auto-submitted')).to.equal('auto-replied');
    } finally {
      mailbox.close();
    }
  });

  it('creates a Sent folder when the mailbox has none; the kept connections of a bot are reused', async () => {
    const user = addMailUser('adapter');
    const sessions = new ImapSessions(egress, 2);
    try {
      const first = await sessions.get('bot-a', endpoint(user));
      expect(await first.sentFolder()).to.equal('Sent');
      const second = await sessions.get('bot-a', endpoint(user));
      const third = await sessions.get('bot-a', endpoint(user));
      expect(second).not.to.equal(first);
      expect(third).to.equal(first);
      expect(await second.sentFolder()).to.equal('Sent');
    } finally {
      sessions.closeAll();
    }
  });
});
