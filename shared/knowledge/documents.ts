import type { Knex } from 'knex';
import { openString, sealString, type KeyRing } from '../crypto/index.js';
import { knowledgeTextAad, knowledgeTitleAad } from './aad.js';

export type DocumentStatus = 'pending' | 'indexed' | 'failed';

export interface DocumentRow {
  id: string;
  tenant_id: string;
  bot_id: string;
  owner_id: string | null;
  title_ciphertext: string;
  text_ciphertext: string | null;
  file_id: string | null;
  content_type: string;
  status: DocumentStatus;
  chunk_count: number;
  collection: string | null;
  failure_reason: string | null;
  created_at: Date;
  updated_at: Date;
}

/** What operators see of a document: never its text (that is what search is for). */
export interface DocumentInfo {
  id: string;
  botId: string;
  title: string;
  status: DocumentStatus;
  reason: string | null;
  chunks: number;
  fileId: string | null;
  type: string;
  createdAt: string;
}

/** The document types the embed worker can read. */
export const KNOWLEDGE_TYPES: readonly string[] = [
  'text/plain',
  'text/markdown',
  'text/html',
  'application/pdf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
];

export function documentTitle(ring: KeyRing, row: Pick<DocumentRow, 'id' | 'title_ciphertext'>): string {
  return openString(ring, row.title_ciphertext, knowledgeTitleAad(row.id));
}

export function documentText(ring: KeyRing, row: Pick<DocumentRow, 'id' | 'text_ciphertext'>): string | undefined {
  return row.text_ciphertext === null ? undefined : openString(ring, row.text_ciphertext, knowledgeTextAad(row.id));
}

export function toDocumentInfo(ring: KeyRing, row: DocumentRow): DocumentInfo {
  return {
    id: row.id,
    botId: row.bot_id,
    title: documentTitle(ring, row),
    status: row.status,
    reason: row.failure_reason,
    chunks: row.chunk_count,
    fileId: row.file_id,
    type: row.content_type,
    createdAt: row.created_at.toISOString(),
  };
}

export interface NewDocument {
  id: string;
  tenantId: string;
  botId: string;
  ownerId: string | null;
  title: string;
  /** Exactly one of text and fileId. */
  text?: string;
  fileId?: string;
  contentType: string;
}

/** Records a document as `pending`. Call inside a tenant-scoped transaction. */
export async function insertDocument(trx: Knex.Transaction, ring: KeyRing, document: NewDocument): Promise<DocumentRow> {
  const [row] = await trx('knowledge_documents')
    .insert({
      id: document.id,
      tenant_id: document.tenantId,
      bot_id: document.botId,
      owner_id: document.ownerId,
      title_ciphertext: sealString(ring, document.title, knowledgeTitleAad(document.id)),
      text_ciphertext: document.text === undefined ? null : sealString(ring, document.text, knowledgeTextAad(document.id)),
      file_id: document.fileId ?? null,
      content_type: document.contentType,
    })
    .returning<DocumentRow[]>('*');
  if (row === undefined) throw new Error('document insert returned no row');
  return row;
}

/** Titles of documents by id (for the sources of an answer). */
export async function documentTitles(trx: Knex.Transaction, ring: KeyRing, ids: readonly string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const rows = await trx('knowledge_documents').whereIn('id', [...new Set(ids)]).select<Array<Pick<DocumentRow, 'id' | 'title_ciphertext'>>>('id', 'title_ciphertext');
  return new Map(rows.map((row) => [row.id, documentTitle(ring, row)]));
}
