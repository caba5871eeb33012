import { lazyEmbedder } from '../../adapters/embeddings/index.js';
import type { Embedder } from '../../adapters/embeddings/types.js';
import { createKnowledgeIndex } from '../../adapters/qdrant/index.js';
import type { KnowledgeIndex } from '../../adapters/qdrant/types.js';
import type { Config } from '../../shared/config/index.js';
import { ConflictError } from '../../shared/errors.js';

/** The API's handle on the knowledge store: present only with the vectordb feature. */
export interface KnowledgeServices {
  index: KnowledgeIndex;
  /** The query embedder, made on first use (an OpenAI-compatible endpoint is probed for its dimension once). */
  embedder(): Promise<Embedder>;
}

export function knowledgeServices(config: Config): KnowledgeServices | undefined {
  if (!config.features.has('vectordb') || config.qdrant === undefined) return undefined;
  const index = createKnowledgeIndex({ url: config.qdrant.url, apiKey: config.qdrant.apiKey });
  return { index, embedder: lazyEmbedder(config) };
}

/** 409 `feature_disabled` when the server runs without vectordb. */
export function requireKnowledge(services: KnowledgeServices | undefined): KnowledgeServices {
  if (services === undefined) throw new ConflictError('feature_disabled', 'The vectordb feature is not enabled on this server');
  return services;
}
