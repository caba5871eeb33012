import { expect } from 'chai';
import { parseMail } from '../../adapters/mail/parse.js';
import type { InboundMail } from '../../shared/email/mail.js';
import { extractMeta, inputText, normaliseSubject, replySubject, singleLine, skipReason } from '../../shared/email/message.js';
import { normaliseMessageId } from '../../shared/email/channel.js';

async function parse(headers: string[], body = 'Hello bot'): Promise<{ mail: InboundMail; source: Buffer }> {
  const source = Buffer.from([...headers, 'Content-Type: text/plain; charset=utf-8', '', body, ''].join('\r\n'));
  return { mail: await parseMail(source), source };
}

describe('e-mail message rules (loop safety, threading, input text)', () => {
  const own = 'bot@example.test';
  const base = ['From: Alice <alice@example.test>', `To: ${own}`, 'Subject: Hi', 'Message-ID: <m1@example.test>'];

  it('answers ordinary mail and Auto-Submitted: no', async () => {
    for (const extra of [[], ['Auto-Submitted: no']]) {
      const { mail, source } = await parse([...base, ...extra]);
      expect(skipReason(mail, extractMeta(mail, source), own)).to.equal(null);
    }
  });

  it('skips auto-replies, bulk/list/junk, List-Id, system senders and its own address', async () => {
    const cases: Array<[string[], string]> = [
      [['Auto-Submitted: auto-replied'], 'auto_submitted'],
      [['Auto-Submitted: auto-generated; type=x'], 'auto_submitted'],
      [['Precedence: bulk'], 'precedence'],
      [['Precedence: LIST'], 'precedence'],
      [['Precedence: junk'], 'precedence'],
      [['List-Id: <news.example.test>'], 'list'],
    ];
    for (const [extra, reason] of cases) {
      const { mail, source } = await parse([...base, ...extra]);
      expect(skipReason(mail, extractMeta(mail, source), own), extra.join()).to.equal(reason);
    }
    for (const [from, reason] of [['MAILER-DAEMON@example.test', 'mailer_daemon'], ['postmaster@example.test', 'mailer_daemon'], ['Bot <BOT@Example.test>', 'own_address']]) {
      const { mail, source } = await parse([`From: ${from}`, `To: ${own}`, 'Subject: x', 'Message-ID: <m2@example.test>']);
      expect(skipReason(mail, extractMeta(mail, source), own), from).to.equal(reason);
    }
  });

  it('keeps the new text: no quoted history, no signature; HTML-only mail becomes text', async () => {
    const { mail } = await parse(base, 'Thanks!\n\nOn Mon, 1 Jan 2026, Bot wrote:\n> old text\n> more');
    expect(inputText(mail)).to.equal('Thanks!');
    const signed = await parse(base, 'Question here\n> quoted\n-- \nAlice\nPhone');
    expect(inputText(signed.mail)).to.equal('Question here');
    const html = await parseMail(Buffer.from([...base, 'Content-Type: text/html; charset=utf-8', '', '<p>Hello <b>bot</b></p><script>alert(1)</script>', ''].join('\r\n')));
    expect(inputText(html)).to.include('Hello bot').and.not.include('<b>');
  });

  it('normalises subjects and Message-IDs for threading; header values lose line breaks', async () => {
    expect(normaliseSubject('Re: AW: Fwd:  Hello  World')).to.equal('hello world');
    expect(replySubject('Re: Hello')).to.equal('Re: Hello');
    expect(replySubject('Hello\r\nBcc: x@y')).to.equal('Re: Hello Bcc: x@y');
    expect(singleLine('a\r\nb\u2028c')).to.equal('a b c');
    expect(normaliseMessageId('<Abc@EXAMPLE.Test>')).to.equal('Abc@example.test');
    const { mail, source } = await parse(['From: Alice <alice@example.test>', 'Subject: x', 'In-Reply-To: <p@x.test>', 'References: <a@x.test> <p@x.test>']);
    const meta = extractMeta(mail, source);
    expect(meta?.references).to.deep.equal(['a@x.test', 'p@x.test']);
    expect(meta?.inReplyTo).to.equal('p@x.test');
    expect(meta?.messageId).to.match(/^sha256-[0-9a-f]{64}@missing\.invalid$/);
  });
});
