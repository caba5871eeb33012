import type { Knex } from 'knex';
import { openString, sealString, type KeyRing } from '../crypto/index.js';
import { nameAad } from './aad.js';

export type FileStatus = 'pending' | 'stored' | 'failed';

export interface FileRow {
  id: string;
  tenant_id: string;
  owner_id: string | null;
  name_ciphertext: string;
  content_type: string;
  size: string | number;
  storage_key: string;
  status: FileStatus;
  sha256: string | null;
  source: 'upload' | 'email';
  wrapped_key: string | null;
  chunk_size: number | null;
  failure_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/** What clients see of a file: never its key, storage location or the raw row. */
export interface FileInfo {
  id: string;
  name: string;
  size: number;
  type: string;
  status: FileStatus;
  sha256: string | null;
  source: 'upload' | 'email';
  failureReason: string | null;
  createdAt: string;
}

/** One attachment as a `message:new` event and the message list carry it. */
export interface AttachmentSummary {
  id: string;
  name: string;
  size: number;
  type: string;
}

/** Server-made object key: the tenant and the file id, never a user's name. */
export const storageKeyOf = (tenantId: string, fileId: string): string => `${tenantId}/${fileId}`;

export function fileName(ring: KeyRing, row: Pick<FileRow, 'id' | 'name_ciphertext'>): string {
  return openString(ring, row.name_ciphertext, nameAad(row.id));
}

export function toFileInfo(ring: KeyRing, row: FileRow): FileInfo {
  return {
    id: row.id,
    name: fileName(ring, row),
    size: Number(row.size),
    type: row.content_type,
    status: row.status,
    sha256: row.sha256,
    source: row.source,
    failureReason: row.failure_reason,
    createdAt: row.created_at.toISOString(),
  };
}

export interface NewFile {
  id: string;
  tenantId: string;
  ownerId: string | null;
  name: string;
  contentType: string;
  size: number;
  source: 'upload' | 'email';
  /** From the staging writer: the wrapped data key, the record size and the plaintext's SHA-256. */
  wrappedKey: string;
  chunkSize: number;
  sha256: string;
}

/** Records a staged file as `pending`. Call inside a tenant-scoped transaction. */
export async function insertFile(trx: Knex.Transaction, columnRing: KeyRing, file: NewFile): Promise<void> {
  await trx('files').insert({
    id: file.id,
    tenant_id: file.tenantId,
    owner_id: file.ownerId,
    name_ciphertext: sealString(columnRing, file.name, nameAad(file.id)),
    content_type: file.contentType,
    size: file.size,
    storage_key: storageKeyOf(file.tenantId, file.id),
    source: file.source,
    wrapped_key: file.wrappedKey,
    chunk_size: file.chunkSize,
    sha256: file.sha256,
  });
}

export async function findFile(trx: Knex.Transaction, fileId: string): Promise<FileRow | undefined> {
  return trx('files').where({ id: fileId }).first<FileRow | undefined>();
}

/** The attachments of these messages, in their order, keyed by message id. */
export async function attachmentsOf(trx: Knex.Transaction, columnRing: KeyRing, messageIds: readonly string[]): Promise<Map<string, AttachmentSummary[]>> {
  const byMessage = new Map<string, AttachmentSummary[]>();
  if (messageIds.length === 0) return byMessage;
  const rows = await trx('message_attachments as a')
    .join('files as f', 'f.id', 'a.file_id')
    .whereIn('a.message_id', messageIds)
    .orderBy([{ column: 'a.message_id' }, { column: 'a.position' }])
    .select<Array<{ message_id: string; id: string; name_ciphertext: string; size: string | number; content_type: string }>>('a.message_id', 'f.id', 'f.name_ciphertext', 'f.size', 'f.content_type');
  for (const row of rows) {
    const list = byMessage.get(row.message_id) ?? [];
    list.push({ id: row.id, name: fileName(columnRing, row), size: Number(row.size), type: row.content_type });
    byMessage.set(row.message_id, list);
  }
  return byMessage;
}
