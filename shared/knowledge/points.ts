import { createHash } from 'node:crypto';

/** A chunk's point id: a UUID derived from its document and position, so indexing again overwrites, never duplicates. */
export function pointId(documentId: string, chunkIndex: number): string {
  const hex = createHash('sha256').update(`botserver-knowledge-point:${documentId}:${chunkIndex}`).digest('hex');
  // Shaped as a version-5-style UUID (Qdrant accepts any UUID).
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${((parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${hex.slice(18, 20)}-${hex.slice(20, 32)}`;
}
