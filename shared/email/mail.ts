/**
 * An inbound mail as the e-mail rules see it, whatever parsed it (adapters/mail/parse.ts builds it with mailparser).
 * Header values are the raw, unfolded values; text and HTML are decoded.
 */
export interface MailAddress {
  name: string;
  address: string;
}

export interface InboundAttachment {
  /** The file name the mail gives, if any (not sanitised). */
  filename: string | undefined;
  contentType: string;
  /** `attachment`, `inline` or undefined. */
  contentDisposition: string | undefined;
  /** Part of a multipart/related body (an image the HTML shows). */
  related: boolean;
  /** Content-ID without angle brackets. */
  cid: string | undefined;
  content: Buffer;
}

export interface InboundMail {
  messageId: string | undefined;
  inReplyTo: string | undefined;
  references: string[];
  /** Every address of the From field, in order. */
  from: MailAddress[];
  subject: string | undefined;
  /** The plain text (derived from the HTML when the mail has none). */
  text: string | undefined;
  html: string | undefined;
  /** Lower-case header name → its first value, unfolded. */
  headers: ReadonlyMap<string, string>;
  attachments: InboundAttachment[];
}
