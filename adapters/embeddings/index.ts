/**
 * The embedder for a configuration: EMBEDDINGS_BASE_URL set → an OpenAI-compatible endpoint (one probe request
 * learns the dimension, so the promise rejects with UnavailableError or `embeddings_error` when the endpoint does
 * not work); otherwise the built-in hashing embedder (no download, no network).
 */
import type { Config } from '../../shared/config/index.js';
import { HashingEmbedder } from './hashing.js';
import { OpenAiEmbedder } from './openai.js';
import type { Embedder } from './types.js';

export type { Embedder } from './types.js';
export { HASHING_DIMENSION, HASHING_MODEL, HashingEmbedder, hashingVector } from './hashing.js';
export { DEFAULT_EMBEDDINGS_MODEL, EMBEDDINGS_BATCH_SIZE, OpenAiEmbedder, embeddingsError, type OpenAiEmbedderOptions } from './openai.js';

export interface CreateEmbedderOptions {
  fetch?: typeof fetch;
  timeoutMs?: number;
}

export async function createEmbedder(config: Config, options: CreateEmbedderOptions = {}): Promise<Embedder> {
  const settings = config.embeddings;
  if (settings === undefined) return new HashingEmbedder();
  // An API key is taken when the configuration carries one (EMBEDDINGS_API_KEY, if the config defines it).
  const apiKey = (settings as { apiKey?: string | undefined }).apiKey;
  const embedder = new OpenAiEmbedder({ baseUrl: settings.baseUrl, model: settings.model, apiKey, ...options });
  await embedder.init();
  return embedder;
}

/**
 * The embedder made on first use and kept: an OpenAI-compatible endpoint is probed for its dimension once. A probe
 * that fails is forgotten, so the next call tries again.
 */
export function lazyEmbedder(config: Config): () => Promise<Embedder> {
  let pending: Promise<Embedder> | undefined;
  return () => {
    const ready =
      pending ??
      createEmbedder(config).catch((error: unknown) => {
        pending = undefined;
        throw error;
      });
    pending = ready;
    return ready;
  };
}
