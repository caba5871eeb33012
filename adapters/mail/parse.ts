import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import type { InboundMail, MailAddress } from '../../shared/email/mail.js';

/** Every address of an address header, in order (groups flattened). */
function addresses(field: AddressObject | AddressObject[] | undefined): MailAddress[] {
  const objects = field === undefined ? [] : Array.isArray(field) ? field : [field];
  const found: MailAddress[] = [];
  for (const object of objects) {
    for (const entry of object.value) {
      for (const member of [entry, ...(entry.group ?? [])]) {
        if (member.address !== undefined && member.address !== '') found.push({ name: member.name, address: member.address });
      }
    }
  }
  return found;
}

/** Lower-case header name → first raw value, unfolded (what the loop-safety rules read; never MIME-decoded). */
function headerValues(mail: ParsedMail): Map<string, string> {
  const values = new Map<string, string>();
  for (const { key, line } of mail.headerLines) {
    if (values.has(key)) continue;
    const colon = line.indexOf(':');
    values.set(key, (colon < 0 ? '' : line.slice(colon + 1)).replace(/\r?\n[ \t]+/g, ' ').trim());
  }
  return values;
}

/**
 * Parses one RFC 5322 message (mailparser). Links and images are not resolved or fetched; the HTML is kept as text
 * for the rules that read it and never rendered.
 */
export async function parseMail(source: Buffer): Promise<InboundMail> {
  const mail = await simpleParser(source, { skipImageLinks: true, skipTextToHtml: true, skipTextLinks: true });
  const references = mail.references === undefined ? [] : Array.isArray(mail.references) ? mail.references : mail.references.split(/\s+/);
  return {
    messageId: mail.messageId,
    inReplyTo: mail.inReplyTo,
    references,
    from: addresses(mail.from),
    subject: mail.subject,
    text: mail.text,
    html: typeof mail.html === 'string' ? mail.html : undefined,
    headers: headerValues(mail),
    attachments: mail.attachments.map((attachment) => ({
      filename: attachment.filename,
      contentType: attachment.contentType,
      contentDisposition: attachment.contentDisposition,
      related: attachment.related === true,
      cid: attachment.cid,
      content: Buffer.isBuffer(attachment.content) ? attachment.content : Buffer.alloc(0),
    })),
  };
}
