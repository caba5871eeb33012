/**
 * The knowledge store on Qdrant (the only module that imports `@qdrant/js-client-rest`). One collection per embedding
 * model and dimension, holding a named dense vector `dense` (cosine) and a named sparse vector `bm25` whose weights
 * Qdrant multiplies by the IDF of the collection. Every search carries a must-filter on tenant and bot, on each
 * prefetch and on the fused query, and hits are checked against it again on the way out.
 *
 * Requests use only fields of Qdrant 1.19's OpenAPI document: the integration test runs the adapter against a
 * stand-in that validates every body against that document (test/helpers/qdrant-server.ts).
 */
import { createHash } from 'node:crypto';
import { QdrantClient, type Schemas } from '@qdrant/js-client-rest';
import { AppError } from '../../shared/errors.js';
import { log } from '../../shared/log/index.js';
import { isAlreadyExists, translateQdrantError } from './errors.js';
import type { KnowledgeHit, KnowledgeIndex, KnowledgePayload, KnowledgePoint, KnowledgeQuery, SparseVector } from './types.js';

export type { KnowledgeHit, KnowledgeIndex, KnowledgePayload, KnowledgePoint, KnowledgeQuery, SparseVector } from './types.js';
export { translateQdrantError } from './errors.js';

export const DENSE_VECTOR = 'dense';
export const SPARSE_VECTOR = 'bm25';
/** Points per upsert request. */
export const UPSERT_BATCH_SIZE = 256;
/** Candidates each prefetch hands to the fusion: at least this many, or PREFETCH_FACTOR × limit. */
export const PREFETCH_MIN = 40;
export const PREFETCH_FACTOR = 4;
/** Qdrant's largest dense vector. */
const MAX_DIMENSION = 65_536;
const COLLECTION_PREFIX = 'botserver_';
/** Room for the prefix, the dimension and a hash within Qdrant's 255-character collection names. */
const MAX_MODEL_PART = 80;
const DEFAULT_TIMEOUT_MS = 30_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The payload indexes of a knowledge collection; `tenant_id` is the tenant key (`is_tenant`: co-located storage). */
const PAYLOAD_INDEXES: ReadonlyArray<readonly [keyof KnowledgePayload, Schemas['PayloadFieldSchema']]> = [
  ['tenant_id', { type: 'keyword', is_tenant: true }],
  ['bot_id', 'keyword'],
  ['document_id', 'keyword'],
];

export interface KnowledgeIndexOptions {
  /** `http(s)://host:port` of Qdrant's REST API. */
  url: string;
  /** Sent as the `api-key` header when set. */
  apiKey?: string | undefined;
  /** Per-request limit; a request that runs longer fails with UnavailableError. Default 30 s. */
  timeoutMs?: number;
}

/**
 * `botserver_<model>_<dimension>`, the model lower-cased with every run of other characters than `[a-z0-9_]` made
 * one `_`. When that changes the model name (or shortens it), 8 hex digits of its SHA-256 follow, so two models that
 * sanitise alike (`BAAI/bge-m3`, `baai_bge_m3`) never share a vector space.
 */
export function knowledgeCollectionName(model: string, dimension: number): string {
  checkDimension(dimension);
  if (model.trim() === '') throw new AppError('invalid_embedding', 'The embedding model has no name', { status: 500, expose: false });
  const sanitised = model
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  const part = sanitised.slice(0, MAX_MODEL_PART).replace(/_+$/, '');
  const exact = part === model && part !== '';
  const suffix = exact ? '' : `_${createHash('sha256').update(model, 'utf8').digest('hex').slice(0, 8)}`;
  return `${COLLECTION_PREFIX}${part === '' ? 'model' : part}_${dimension}${suffix}`;
}

function checkDimension(dimension: number): void {
  if (!Number.isInteger(dimension) || dimension < 1 || dimension > MAX_DIMENSION) {
    throw new AppError('invalid_embedding', `An embedding dimension must be an integer from 1 to ${MAX_DIMENSION}`, { status: 500, expose: false });
  }
}

function invalidVector(message: string): AppError {
  return new AppError('invalid_vector', message, { status: 500, expose: false });
}

function checkSparse(sparse: SparseVector, what: string): void {
  if (sparse.indices.length !== sparse.values.length) throw invalidVector(`${what}: sparse indices and values differ in length`);
  const seen = new Set<number>();
  for (const index of sparse.indices) {
    if (!Number.isInteger(index) || index < 0 || index > 0xffff_ffff) throw invalidVector(`${what}: a sparse index is not a uint32`);
    if (seen.has(index)) throw invalidVector(`${what}: sparse indices repeat`);
    seen.add(index);
  }
  if (!sparse.values.every(Number.isFinite)) throw invalidVector(`${what}: a sparse value is not a finite number`);
}

function checkDense(dense: readonly number[], dimension: number | undefined, what: string): void {
  if (dense.length === 0) throw invalidVector(`${what}: the dense vector is empty`);
  if (dimension !== undefined && dense.length !== dimension) throw invalidVector(`${what}: the dense vector has ${dense.length} dimensions, the collection ${dimension}`);
  if (!dense.every(Number.isFinite)) throw invalidVector(`${what}: a dense value is not a finite number`);
}

function mustMatch(pairs: ReadonlyArray<readonly [keyof KnowledgePayload, string]>): Schemas['Filter'] {
  return { must: pairs.map(([key, value]) => ({ key, match: { value } })) };
}

function requireText(value: string, what: string): void {
  if (typeof value !== 'string' || value === '') throw new AppError('invalid_knowledge_request', `${what} is required`, { status: 500, expose: false });
}

function isVectorParams(value: unknown): value is Schemas['VectorParams'] {
  return typeof value === 'object' && value !== null && typeof (value as { size?: unknown }).size === 'number';
}

/** The named dense vector of a collection's config (undefined when the collection has a single unnamed vector). */
function denseParams(info: Schemas['CollectionInfo']): Schemas['VectorParams'] | undefined {
  const vectors: unknown = info.config.params.vectors;
  if (typeof vectors !== 'object' || vectors === null || isVectorParams(vectors)) return undefined;
  const named: unknown = (vectors as Record<string, unknown>)[DENSE_VECTOR];
  return isVectorParams(named) ? named : undefined;
}

function checkCollectionConfig(name: string, info: Schemas['CollectionInfo'], dimension: number): void {
  const dense = denseParams(info);
  const sparse = info.config.params.sparse_vectors?.[SPARSE_VECTOR];
  const matches = dense?.size === dimension && dense.distance === 'Cosine' && sparse?.modifier === 'idf';
  if (!matches) {
    throw new AppError('vector_store_error', `Qdrant collection ${name} exists with another vector configuration`, { status: 502, expose: false });
  }
}

/** The stored payload of a hit, or undefined when it lacks a field (a point this adapter did not write). */
function readPayload(payload: unknown): KnowledgePayload | undefined {
  if (typeof payload !== 'object' || payload === null) return undefined;
  const record = payload as Record<string, unknown>;
  const { tenant_id, bot_id, document_id, chunk_index, position, text_sealed } = record;
  if (typeof tenant_id !== 'string' || typeof bot_id !== 'string' || typeof document_id !== 'string') return undefined;
  if (typeof chunk_index !== 'number' || typeof position !== 'string' || typeof text_sealed !== 'string') return undefined;
  return { tenant_id, bot_id, document_id, chunk_index, position, text_sealed };
}

/** Creates the adapter; no request is made until the first call. */
export function createKnowledgeIndex(options: KnowledgeIndexOptions): KnowledgeIndex {
  const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  // The key goes in as a plain header: the client's `apiKey` option prints a console warning over http, and the
  // version check (`checkCompatibility`) is an unawaited request that also writes to the console.
  const client = new QdrantClient({
    url: options.url,
    timeout,
    checkCompatibility: false,
    ...(options.apiKey === undefined || options.apiKey === '' ? {} : { headers: { 'api-key': options.apiKey } }),
  });
  /** Collection name → the promise of its preparation (ensureCollection runs once per collection and process). */
  const ensured = new Map<string, Promise<string>>();
  /** Collection name → dense dimension, for the collections this process prepared. */
  const dimensions = new Map<string, number>();

  async function call<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw translateQdrantError(error, operation);
    }
  }

  async function prepare(name: string, dimension: number): Promise<string> {
    const { exists } = await call('collection check', () => client.collectionExists(name));
    if (!exists) {
      try {
        await client.createCollection(name, {
          vectors: { [DENSE_VECTOR]: { size: dimension, distance: 'Cosine' } },
          sparse_vectors: { [SPARSE_VECTOR]: { modifier: 'idf' } },
        });
        log.info('Qdrant collection created', { collection: name, dimension });
      } catch (error) {
        if (!isAlreadyExists(error)) throw translateQdrantError(error, 'create collection');
      }
    }
    // Read back: a collection made by someone else must have our vectors, and indexes lost to a crash between the
    // create and the index calls are made now (creating an index that exists is a no-op for Qdrant anyway).
    const info = await call('collection info', () => client.getCollection(name));
    checkCollectionConfig(name, info, dimension);
    for (const [field, schema] of PAYLOAD_INDEXES) {
      if (info.payload_schema[field] !== undefined) continue;
      await call('create payload index', () => client.createPayloadIndex(name, { field_name: field, field_schema: schema, wait: true }));
    }
    dimensions.set(name, dimension);
    return name;
  }

  return {
    ensureCollection(model: string, dimension: number): Promise<string> {
      let name: string;
      try {
        name = knowledgeCollectionName(model, dimension);
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
      let pending = ensured.get(name);
      if (pending === undefined) {
        pending = prepare(name, dimension).catch((error: unknown) => {
          ensured.delete(name);
          throw error;
        });
        ensured.set(name, pending);
      }
      return pending;
    },

    async upsert(collection: string, points: readonly KnowledgePoint[]): Promise<void> {
      const dimension = dimensions.get(collection);
      for (const point of points) {
        if (!UUID.test(point.id)) throw invalidVector('A knowledge point id must be a UUID');
        checkDense(point.dense, dimension, `point ${point.id}`);
        checkSparse(point.sparse, `point ${point.id}`);
        requireText(point.payload.tenant_id, 'tenant_id');
        requireText(point.payload.bot_id, 'bot_id');
        requireText(point.payload.document_id, 'document_id');
      }
      for (let start = 0; start < points.length; start += UPSERT_BATCH_SIZE) {
        const batch: Schemas['PointStruct'][] = points.slice(start, start + UPSERT_BATCH_SIZE).map((point) => ({
          id: point.id,
          vector: {
            [DENSE_VECTOR]: [...point.dense],
            [SPARSE_VECTOR]: { indices: [...point.sparse.indices], values: [...point.sparse.values] },
          },
          payload: { ...point.payload },
        }));
        await call('upsert', () => client.upsert(collection, { wait: true, points: batch }));
      }
    },

    async deleteDocument(collection: string, tenantId: string, documentId: string): Promise<void> {
      requireText(tenantId, 'tenantId');
      requireText(documentId, 'documentId');
      const filter = mustMatch([
        ['tenant_id', tenantId],
        ['document_id', documentId],
      ]);
      await call('delete document', () => client.delete(collection, { wait: true, filter }));
    },

    async search(collection: string, query: KnowledgeQuery): Promise<KnowledgeHit[]> {
      // Never a search without the tenant and bot filter: both are required, non-empty, and go on every stage.
      requireText(query.tenantId, 'tenantId');
      requireText(query.botId, 'botId');
      const limit = Math.floor(query.limit);
      if (!(limit >= 1)) return [];
      checkDense(query.dense, dimensions.get(collection), 'query');
      checkSparse(query.sparse, 'query');
      const filter = mustMatch([
        ['tenant_id', query.tenantId],
        ['bot_id', query.botId],
      ]);
      const dense = [...query.dense];
      let request: Schemas['QueryRequest'];
      if (query.denseOnly === true) {
        request = { query: dense, using: DENSE_VECTOR, filter, limit, with_payload: true };
      } else {
        const candidates = Math.max(PREFETCH_MIN, limit * PREFETCH_FACTOR);
        const prefetch: Schemas['Prefetch'][] = [{ query: dense, using: DENSE_VECTOR, limit: candidates, filter }];
        // A query without terms has no sparse side; the dense list alone still goes through the same fusion.
        if (query.sparse.indices.length > 0) {
          prefetch.push({ query: { indices: [...query.sparse.indices], values: [...query.sparse.values] }, using: SPARSE_VECTOR, limit: candidates, filter });
        }
        request = { prefetch, query: { fusion: 'rrf' }, filter, limit, with_payload: true };
      }
      const response = await call('search', () => client.query(collection, request));
      const hits: KnowledgeHit[] = [];
      for (const point of response.points) {
        const payload = readPayload(point.payload);
        const id = String(point.id);
        if (payload === undefined || payload.tenant_id !== query.tenantId || payload.bot_id !== query.botId) {
          // Defence in depth: the filter makes this impossible; if it ever happens the hit is dropped, not shown.
          log.warn('Qdrant returned a point outside the search filter; dropped', { collection, pointId: id });
          continue;
        }
        hits.push({ id, score: point.score, payload });
      }
      return hits;
    },
  };
}
