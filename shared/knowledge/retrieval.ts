import { openString, type KeyRing } from '../crypto/index.js';
import { passageAad } from './aad.js';
import { sparseQuery } from './sparse.js';

/** The parts of the embeddings and Qdrant adapters retrieval needs (kept structural: shared imports no adapter). */
export interface QueryEmbedder {
  readonly model: string;
  readonly dimension: number;
  embed(texts: readonly string[]): Promise<number[][]>;
}

export interface PassageIndex {
  ensureCollection(model: string, dimension: number): Promise<string>;
  search(
    collection: string,
    query: { tenantId: string; botId: string; dense: number[]; sparse: { indices: number[]; values: number[] }; limit: number; denseOnly?: boolean },
  ): Promise<Array<{ id: string; score: number; payload: { document_id: string; chunk_index: number; position: string; text_sealed: string; tenant_id: string; bot_id: string } }>>;
}

export interface RetrievedPassage {
  documentId: string;
  chunkIndex: number;
  position: string;
  text: string;
  score: number;
}

/** Longest query embedded; a question longer than this is cut (it is a search, not a document). */
const MAX_QUERY_CHARS = 2000;

/**
 * Hybrid retrieval for one bot: the query embedded (dense) and tokenised (sparse), fused by Qdrant, always filtered
 * by tenant and bot; passages come back sealed and are opened here. A hit from another tenant or bot (which the
 * filter makes impossible) would still be dropped: the check is repeated on the payload.
 */
export async function retrievePassages(
  embedder: QueryEmbedder,
  index: PassageIndex,
  ring: KeyRing,
  query: { tenantId: string; botId: string; text: string; limit: number; denseOnly?: boolean },
): Promise<RetrievedPassage[]> {
  const text = query.text.slice(0, MAX_QUERY_CHARS).trim();
  if (text === '') return [];
  const [dense] = await embedder.embed([text]);
  if (dense === undefined) return [];
  const collection = await index.ensureCollection(embedder.model, embedder.dimension);
  const hits = await index.search(collection, {
    tenantId: query.tenantId,
    botId: query.botId,
    dense,
    sparse: sparseQuery(text),
    limit: query.limit,
    ...(query.denseOnly === true ? { denseOnly: true } : {}),
  });
  return hits
    .filter((hit) => hit.payload.tenant_id === query.tenantId && hit.payload.bot_id === query.botId)
    .map((hit) => ({
      documentId: hit.payload.document_id,
      chunkIndex: hit.payload.chunk_index,
      position: hit.payload.position,
      text: openString(ring, hit.payload.text_sealed, passageAad(hit.id)),
      score: hit.score,
    }));
}

/**
 * The passages with their documents' titles; a passage whose document was deleted a moment ago (no title) is left
 * out rather than shown without its source.
 */
export function titledPassages(passages: readonly RetrievedPassage[], titles: ReadonlyMap<string, string>): Array<RetrievedPassage & { title: string }> {
  return passages.flatMap((passage) => {
    const title = titles.get(passage.documentId);
    return title === undefined ? [] : [{ ...passage, title }];
  });
}
