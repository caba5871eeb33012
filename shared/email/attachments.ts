import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { KeyRing } from '../crypto/index.js';
import { FileStaging, insertFile, SNIFF_BYTES, sniffType, typeAllowed, type StagedContent } from '../files/index.js';
import { safeFileName } from '../paths.js';
import type { InboundAttachment, InboundMail } from './mail.js';

/** Most files one inbound mail brings in; the rest are skipped (and counted). */
export const MAX_EMAIL_ATTACHMENTS = 20;

/**
 * An image the HTML body shows through `cid:` is kept only from this size on: a pasted screenshot or photo is
 * something a person wants, a signature logo, icon or spacer is not (and would only be noise in the conversation).
 */
export const EMBEDDED_IMAGE_MIN_BYTES = 16 * 1024;

/** Why an attachment was not taken. */
export type AttachmentSkip = 'too_large' | 'type' | 'embedded' | 'too_many';

/** One attachment that passed the checks: its content is still the parser's Buffer. */
export interface AcceptedAttachment {
  name: string;
  contentType: string;
  content: Buffer;
}

export interface AttachmentSelection {
  accepted: AcceptedAttachment[];
  skipped: Record<AttachmentSkip, number>;
}

export interface AttachmentPolicy {
  maxSize: number;
  allowedTypes: readonly string[];
}

/** A staged attachment: a file id whose staged bytes wait for their `files` row (and then a file-encrypt job). */
export interface StagedAttachment extends AcceptedAttachment {
  fileId: string;
  sealed: StagedContent;
}

/** The `cid:` references of the HTML body, lower-cased (the parser keeps them: image links are not resolved). */
function referencedCids(mail: InboundMail): Set<string> {
  const html = mail.html ?? '';
  const found = new Set<string>();
  for (const match of html.matchAll(/cid:([^"'\s>)]+)/gi)) {
    const value = match[1] ?? '';
    found.add(value.toLowerCase());
    try {
      found.add(decodeURIComponent(value).toLowerCase());
    } catch {
      // a malformed escape: the raw form is all there is
    }
  }
  return found;
}

/** A part the HTML body embeds (multipart/related and referenced by `cid:`) rather than one sent as a file. */
function embedded(attachment: InboundAttachment, cids: Set<string>): boolean {
  if (attachment.contentDisposition === 'attachment') return false;
  return attachment.related && attachment.cid !== undefined && cids.has(attachment.cid.toLowerCase());
}

/**
 * The attachments of an inbound mail that become files, in their order in the mail: at most `maxSize` bytes each,
 * of a type (sniffed from the bytes, as for uploads) the allowlist accepts, at most MAX_EMAIL_ATTACHMENTS. Parts the
 * HTML body embeds are skipped unless they are images of at least EMBEDDED_IMAGE_MIN_BYTES. Nothing here logs or
 * throws for a refused attachment: it is counted in `skipped`.
 */
export async function selectAttachments(mail: InboundMail, policy: AttachmentPolicy): Promise<AttachmentSelection> {
  const skipped: Record<AttachmentSkip, number> = { too_large: 0, type: 0, embedded: 0, too_many: 0 };
  const accepted: AcceptedAttachment[] = [];
  if (mail.attachments.length === 0) return { accepted, skipped };
  const cids = referencedCids(mail);
  for (const [index, attachment] of mail.attachments.entries()) {
    const { content } = attachment;
    if (content.length > policy.maxSize) {
      skipped.too_large += 1;
      continue;
    }
    const name = safeFileName(attachment.filename ?? `attachment-${index + 1}`);
    const contentType = await sniffType(content.subarray(0, SNIFF_BYTES), name);
    if (!typeAllowed(contentType, policy.allowedTypes)) {
      skipped.type += 1;
      continue;
    }
    if (embedded(attachment, cids) && !(contentType.startsWith('image/') && content.length >= EMBEDDED_IMAGE_MIN_BYTES)) {
      skipped.embedded += 1;
      continue;
    }
    if (accepted.length >= MAX_EMAIL_ATTACHMENTS) {
      skipped.too_many += 1;
      continue;
    }
    accepted.push({ name, contentType, content });
  }
  return { accepted, skipped };
}

/** Total of the skip counters. */
export function skippedCount(selection: AttachmentSelection): number {
  return Object.values(selection.skipped).reduce((sum, count) => sum + count, 0);
}

/**
 * Writes each accepted attachment to the staging folder (encrypted under its own data key, bound to a fresh file id)
 * and pushes it to `staged` as soon as it is complete, so a caller can remove what was staged when a later step
 * fails. Throws on an I/O failure (the mail is then handled again later).
 */
export async function stageAttachments(staging: FileStaging, ring: KeyRing, tenantId: string, accepted: readonly AcceptedAttachment[], staged: StagedAttachment[]): Promise<void> {
  for (const attachment of accepted) {
    const fileId = randomUUID();
    const writer = await staging.writer(ring, tenantId, fileId);
    try {
      writer.input.end(attachment.content);
      const sealed = await writer.commit();
      staged.push({ ...attachment, fileId, sealed });
    } catch (error) {
      await writer.abort();
      throw error;
    }
  }
}

/**
 * Records staged attachments as `pending` files of no account (source `email`) and links them to the message in
 * their order. Call in the transaction that stores the message, so the mail and its files are stored together.
 */
export async function recordAttachments(trx: Knex.Transaction, columnRing: KeyRing, tenantId: string, messageId: string, staged: readonly StagedAttachment[]): Promise<void> {
  if (staged.length === 0) return;
  for (const file of staged) {
    await insertFile(trx, columnRing, {
      id: file.fileId,
      tenantId,
      ownerId: null,
      name: file.name,
      contentType: file.contentType,
      size: file.content.length,
      source: 'email',
      wrappedKey: file.sealed.wrappedKey,
      chunkSize: file.sealed.chunkSize,
      sha256: file.sealed.sha256,
    });
  }
  await trx('message_attachments').insert(staged.map((file, position) => ({ tenant_id: tenantId, message_id: messageId, file_id: file.fileId, position })));
}
