/** A sparse (BM25-style) vector: term hashes and their term-frequency weights; Qdrant applies the IDF. */
export interface SparseVector {
  indices: number[];
  values: number[];
}

/** What a point carries besides its vectors. The passage text is stored sealed (never plaintext in Qdrant). */
export interface KnowledgePayload {
  tenant_id: string;
  bot_id: string;
  document_id: string;
  /** Order of the chunk in its document, from 0. */
  chunk_index: number;
  /** Where in the document: `page 3`, `section Pricing`, … (no personal data). */
  position: string;
  /** The passage text, sealed with DATABASE_ENCRYPTION_KEY and bound to the point id. */
  text_sealed: string;
}

export interface KnowledgePoint {
  /** A UUID, derived from the document id and chunk index so a re-index overwrites. */
  id: string;
  dense: number[];
  sparse: SparseVector;
  payload: KnowledgePayload;
}

export interface KnowledgeHit {
  id: string;
  score: number;
  payload: KnowledgePayload;
}

export interface KnowledgeQuery {
  tenantId: string;
  botId: string;
  dense: number[];
  sparse: SparseVector;
  limit: number;
  /** Leave out the sparse prefetch (for the retrieval-quality comparison). */
  denseOnly?: boolean;
}

/**
 * The knowledge store (Qdrant): one collection per embedding model and dimension, a tenant payload index
 * (`is_tenant`), every search filtered by tenant and bot, hybrid dense + sparse fused by reciprocal rank.
 */
export interface KnowledgeIndex {
  /** Creates the collection and its payload indexes when missing; returns its name. Idempotent. */
  ensureCollection(model: string, dimension: number): Promise<string>;
  upsert(collection: string, points: readonly KnowledgePoint[]): Promise<void>;
  /** Removes every point of a document (in its tenant). */
  deleteDocument(collection: string, tenantId: string, documentId: string): Promise<void>;
  search(collection: string, query: KnowledgeQuery): Promise<KnowledgeHit[]>;
}
