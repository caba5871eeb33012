/**
 * A Qdrant stand-in for the tests (no Qdrant server can run here): an HTTP server on 127.0.0.1 that serves the REST
 * routes the knowledge adapter uses through `@qdrant/js-client-rest`, in memory.
 *
 * - Every request is checked against Qdrant 1.19's OpenAPI document (test/helpers/qdrant-spec.ts): a body or query
 *   parameter the document refuses gets 400 `{status: {error}, time}`, as Qdrant answers a body it cannot read. The
 *   stand-in's own 200 answers are checked against the document too (a mismatch is a 500: a stand-in bug).
 * - The handlers are typed with the client's own `Schemas[...]` types, so a change of the client shows here.
 * - Semantics, close to Qdrant's: payload filters (must / should / must_not, `match.value|any|except`, has_id,
 *   has_vector, is_empty, is_null, nested filters); cosine (vectors normalised on write, as Qdrant does), dot,
 *   euclid and manhattan distances; sparse dot product with the `idf` modifier
 *   (idf = ln(1 + (N − n + 0.5) / (n + 0.5)) over the collection's points with that sparse vector); prefetch;
 *   reciprocal rank fusion as Qdrant computes it (0-based position p, score Σ 1 / ((p + 1) / weight + k − 1), default
 *   k = 2, the DEFAULT_RRF_K of qdrant's lib/segment/src/common/reciprocal_rank_fusion.rs); score_threshold, limit,
 *   offset, with_payload, with_vector.
 * - What it does not implement answers 501, never a silent approximation: other operations of the document, the
 *   batch form of upsert, inference objects, multi-vectors, recommend/discover/formula/… queries, dbsf fusion, range
 *   and geo conditions, full-text matches.
 *
 * `qdrantForTests()` gives a real Qdrant instead when QDRANT_URL is set (QDRANT_API_KEY with it).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Schemas } from '@qdrant/js-client-rest';
import { qdrantSpec, type OperationValidator } from './qdrant-spec.js';

export const QDRANT_STAND_IN_VERSION = '1.19.0';
/** Qdrant's default `k` of reciprocal rank fusion (`DEFAULT_RRF_K`). */
export const QDRANT_DEFAULT_RRF_K = 2;
const DEFAULT_LIMIT = 10;
/** Qdrant's default `service.max_request_size_mb`. */
const MAX_BODY_BYTES = 32 * 1024 * 1024;

type PointId = Schemas['ExtendedPointId'];
type Payload = Record<string, unknown>;
type SparseVector = Schemas['SparseVector'];

/** An error Qdrant would answer with: the HTTP status and its `status.error` text. */
class QdrantHttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const wrongInput = (message: string): QdrantHttpError => new QdrantHttpError(400, `Wrong input: ${message}`);
const collectionNotFound = (name: string): QdrantHttpError => new QdrantHttpError(404, `Not found: Collection \`${name}\` doesn't exist!`);
const notImplemented = (what: string): QdrantHttpError => new QdrantHttpError(501, `Not implemented by the Qdrant stand-in: ${what}`);

interface StoredPoint {
  id: PointId;
  version: number;
  dense: Map<string, number[]>;
  sparse: Map<string, Map<number, number>>;
  payload: Payload;
}

interface StoredCollection {
  name: string;
  /** A single anonymous dense vector (stored under the name ''). */
  unnamed: boolean;
  dense: Map<string, Schemas['VectorParams']>;
  sparse: Map<string, Schemas['SparseVectorParams']>;
  indexes: Map<string, Schemas['PayloadFieldSchema']>;
  points: Map<string, StoredPoint>;
  operations: number;
}

export interface RecordedQdrantRequest {
  method: string;
  /** The path, decoded, without the query string. */
  path: string;
  /** The query string, without `?`. */
  query: string;
  /** `operationId` of the OpenAPI document (`query_points`, …), or undefined for a path it does not list. */
  operation: string | undefined;
  /** The parsed JSON body (undefined when none). */
  body: unknown;
  /** The status the stand-in answered. */
  status: number;
}

export interface QdrantStandInPoint {
  id: PointId;
  /** Dense vectors as stored (cosine vectors normalised) and sparse vectors, by vector name ('' for an unnamed one). */
  vectors: Record<string, number[] | SparseVector>;
  payload: Payload;
}

export interface QdrantStandInCollection {
  name: string;
  vectors: Record<string, Schemas['VectorParams']>;
  sparseVectors: Record<string, Schemas['SparseVectorParams']>;
  payloadIndexes: Record<string, Schemas['PayloadFieldSchema']>;
  points: QdrantStandInPoint[];
}

export interface QdrantStandIn {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Every request received, in order. */
  requests: RecordedQdrantRequest[];
  /** A copy of every collection, for assertions. */
  collections(): QdrantStandInCollection[];
  stop(): Promise<void>;
}

export interface QdrantStandInOptions {
  /** When set, requests without this `api-key` header are refused with 401, as Qdrant does. */
  apiKey?: string;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const UUID_HYPHENATED = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UUID_SIMPLE = /^[0-9a-f]{32}$/i;

/** A point id as Qdrant reads it: an unsigned integer or a UUID (returned hyphenated, lower case). */
function parsePointId(id: PointId): { id: PointId; key: string } {
  if (typeof id === 'number') {
    if (!Number.isSafeInteger(id) || id < 0) throw new QdrantHttpError(400, `Format error in JSON body: invalid point id ${id}`);
    return { id, key: `n:${id}` };
  }
  let text = id.toLowerCase();
  if (UUID_SIMPLE.test(text)) text = `${text.slice(0, 8)}-${text.slice(8, 12)}-${text.slice(12, 16)}-${text.slice(16, 20)}-${text.slice(20)}`;
  if (!UUID_HYPHENATED.test(text)) throw new QdrantHttpError(400, `Format error in JSON body: Unable to parse UUID: ${id}`);
  return { id: text, key: `u:${text}` };
}

function isVectorParams(value: unknown): value is Schemas['VectorParams'] {
  return isObject(value) && typeof value.size === 'number' && typeof value.distance === 'string';
}

function isSparseVector(value: unknown): value is SparseVector {
  return isObject(value) && Array.isArray(value.indices) && Array.isArray(value.values);
}

function isNumberArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'number');
}

function isInferenceObject(value: Record<string, unknown>): boolean {
  return ('text' in value || 'image' in value || 'object' in value) && 'model' in value;
}

function toSparseMap(vector: SparseVector): Map<number, number> {
  if (vector.indices.length !== vector.values.length) throw wrongInput(`Sparse vector indices and values have different lengths: ${vector.indices.length} and ${vector.values.length}`);
  const map = new Map<number, number>();
  vector.indices.forEach((index, position) => {
    if (map.has(index)) throw wrongInput('Sparse vector indices must be unique');
    map.set(index, vector.values[position] ?? 0);
  });
  return map;
}

function fromSparseMap(map: Map<number, number>): SparseVector {
  const indices = [...map.keys()].sort((a, b) => a - b);
  return { indices, values: indices.map((index) => map.get(index) ?? 0) };
}

function normalise(vector: number[]): number[] {
  const norm = Math.sqrt(vector.reduce((sum, value) => sum + value * value, 0));
  return norm === 0 ? [...vector] : vector.map((value) => value / norm);
}

function checkDimension(params: Schemas['VectorParams'], vector: number[]): void {
  if (vector.length !== params.size) throw wrongInput(`Vector dimension error: expected dim: ${params.size}, got ${vector.length}`);
}

function vectorName(using: string | null | undefined): string {
  return using ?? '';
}

// ---------------------------------------------------------------------------------------------------------------
// Filters

function conditionList(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}

/** The values at a payload key (`a.b`, `a[].b`), arrays flattened, as Qdrant reads a key. */
function valuesAt(payload: Payload, key: string): unknown[] {
  let current: unknown[] = [payload];
  for (const segment of key.split('.')) {
    const name = segment.endsWith('[]') ? segment.slice(0, -2) : segment;
    const next: unknown[] = [];
    for (const value of current) {
      const items = Array.isArray(value) ? value : [value];
      for (const item of items) if (isObject(item) && name in item) next.push(item[name]);
    }
    current = next;
  }
  return current.flatMap((value) => (Array.isArray(value) ? (value as unknown[]) : [value]));
}

function matchesFieldCondition(condition: Schemas['FieldCondition'], point: StoredPoint): boolean {
  const kinds = ['match', 'range', 'geo_bounding_box', 'geo_radius', 'geo_polygon', 'values_count', 'is_empty', 'is_null'].filter(
    (kind) => (condition as Record<string, unknown>)[kind] !== undefined && (condition as Record<string, unknown>)[kind] !== null,
  );
  if (kinds.length === 0) throw new QdrantHttpError(400, 'Validation error in JSON body: At least one field condition must be specified');
  if (kinds.length > 1 || kinds[0] !== 'match') throw notImplemented(`field conditions other than match (${kinds.join(', ')})`);
  const match: unknown = condition.match;
  const values = valuesAt(point.payload, condition.key);
  if (!isObject(match)) throw wrongInput('match must be an object');
  if ('value' in match) return values.some((value) => value === match.value);
  if ('any' in match && Array.isArray(match.any)) {
    const any = match.any as unknown[];
    return values.some((value) => any.includes(value));
  }
  if ('except' in match && Array.isArray(match.except)) {
    const except = match.except as unknown[];
    return !values.some((value) => except.includes(value));
  }
  throw notImplemented(`match ${Object.keys(match).join(', ')}`);
}

function matchesCondition(condition: unknown, point: StoredPoint): boolean {
  if (!isObject(condition)) throw wrongInput('a condition must be an object');
  if ('key' in condition) return matchesFieldCondition(condition as Schemas['FieldCondition'], point);
  if ('has_id' in condition) {
    const ids = (condition as Schemas['HasIdCondition']).has_id.map((id) => parsePointId(id).key);
    return ids.includes(parsePointId(point.id).key);
  }
  if ('has_vector' in condition) {
    const name = (condition as Schemas['HasVectorCondition']).has_vector;
    return point.dense.has(name) || point.sparse.has(name);
  }
  if ('is_empty' in condition) {
    const values = valuesAt(point.payload, (condition as Schemas['IsEmptyCondition']).is_empty.key);
    return values.every((value) => value === null);
  }
  if ('is_null' in condition) {
    const { key } = (condition as Schemas['IsNullCondition']).is_null;
    return valuesAt(point.payload, key).some((value) => value === null);
  }
  if ('nested' in condition) throw notImplemented('nested conditions');
  const keys = Object.keys(condition);
  if (keys.every((key) => ['must', 'should', 'must_not', 'min_should'].includes(key))) return matchesFilter(condition, point);
  throw notImplemented(`condition ${keys.join(', ')}`);
}

function matchesFilter(filter: Schemas['Filter'] | Record<string, unknown> | null | undefined, point: StoredPoint): boolean {
  if (filter === undefined || filter === null) return true;
  if (filter.min_should !== undefined && filter.min_should !== null) throw notImplemented('min_should');
  const must = conditionList(filter.must);
  const should = conditionList(filter.should);
  const mustNot = conditionList(filter.must_not);
  if (!must.every((condition) => matchesCondition(condition, point))) return false;
  if (should.length > 0 && !should.some((condition) => matchesCondition(condition, point))) return false;
  return !mustNot.some((condition) => matchesCondition(condition, point));
}

// ---------------------------------------------------------------------------------------------------------------
// Queries

interface Candidate {
  point: StoredPoint;
  score: number;
}

interface Ranking {
  candidates: Candidate[];
  /** Cosine, dot, sparse and fusion scores: higher is better; euclid and manhattan distances: lower is better. */
  higherIsBetter: boolean;
}

type ParsedQuery =
  | { kind: 'none' }
  | { kind: 'dense'; vector: number[] }
  | { kind: 'sparse'; vector: SparseVector }
  | { kind: 'rrf'; k: number; weights: number[] | undefined };

function parseQuery(query: Schemas['QueryInterface'] | Record<string, unknown> | null | undefined): ParsedQuery {
  if (query === undefined || query === null) return { kind: 'none' };
  if (typeof query === 'number' || typeof query === 'string') throw notImplemented('queries by point id');
  if (Array.isArray(query)) {
    if (isNumberArray(query)) return { kind: 'dense', vector: query };
    throw notImplemented('multi-vector queries');
  }
  if (isSparseVector(query)) return { kind: 'sparse', vector: query };
  if ('nearest' in query) {
    const nearest = query as Schemas['NearestQuery'];
    if (nearest.mmr !== undefined && nearest.mmr !== null) throw notImplemented('MMR');
    const inner = parseQuery(nearest.nearest);
    if (inner.kind !== 'dense' && inner.kind !== 'sparse') throw wrongInput('nearest needs a vector');
    return inner;
  }
  if ('fusion' in query) {
    const { fusion } = query as Schemas['FusionQuery'];
    if (fusion === 'rrf') return { kind: 'rrf', k: QDRANT_DEFAULT_RRF_K, weights: undefined };
    throw notImplemented(`fusion ${String(fusion)}`);
  }
  if ('rrf' in query) {
    const { rrf } = query as Schemas['RrfQuery'];
    const weights: unknown = (rrf as Record<string, unknown>).weights;
    return { kind: 'rrf', k: rrf.k ?? QDRANT_DEFAULT_RRF_K, weights: isNumberArray(weights) ? weights : undefined };
  }
  if (isInferenceObject(query)) throw notImplemented('inference (document, image or object queries)');
  throw notImplemented(`query ${Object.keys(query).join(', ')}`);
}

function denseRanking(collection: StoredCollection, using: string, vector: number[], pool: StoredPoint[]): Ranking {
  const params = collection.dense.get(using);
  if (params === undefined) {
    if (collection.sparse.has(using)) throw wrongInput(`Vector ${using} is sparse; a dense query cannot use it`);
    throw wrongInput(`Not existing vector name error: ${using}`);
  }
  checkDimension(params, vector);
  const query = params.distance === 'Cosine' ? normalise(vector) : vector;
  const candidates: Candidate[] = [];
  for (const point of pool) {
    const stored = point.dense.get(using);
    if (stored === undefined) continue;
    let score: number;
    switch (params.distance) {
      case 'Cosine':
      case 'Dot':
        score = stored.reduce((sum, value, index) => sum + value * (query[index] ?? 0), 0);
        break;
      case 'Euclid':
        score = Math.sqrt(stored.reduce((sum, value, index) => sum + (value - (query[index] ?? 0)) ** 2, 0));
        break;
      case 'Manhattan':
        score = stored.reduce((sum, value, index) => sum + Math.abs(value - (query[index] ?? 0)), 0);
        break;
    }
    candidates.push({ point, score });
  }
  const higherIsBetter = params.distance === 'Cosine' || params.distance === 'Dot';
  candidates.sort((a, b) => (higherIsBetter ? b.score - a.score : a.score - b.score));
  return { candidates, higherIsBetter };
}

/** ln(1 + (N − n + 0.5) / (n + 0.5)): Qdrant's IDF of a sparse dimension. */
export function qdrantIdf(total: number, containing: number): number {
  return Math.log(1 + (total - containing + 0.5) / (containing + 0.5));
}

function sparseRanking(collection: StoredCollection, using: string, vector: SparseVector, pool: StoredPoint[], idfPopulation: StoredPoint[]): Ranking {
  const params = collection.sparse.get(using);
  if (params === undefined) {
    if (collection.dense.has(using)) throw wrongInput(`Vector ${using} is dense; a sparse query cannot use it`);
    throw wrongInput(`Not existing vector name error: ${using}`);
  }
  const query = toSparseMap(vector);
  if (params.modifier === 'idf') {
    const holders = idfPopulation.filter((point) => point.sparse.has(using));
    for (const [index, value] of query) {
      const containing = holders.filter((point) => point.sparse.get(using)?.has(index) === true).length;
      query.set(index, value * qdrantIdf(holders.length, containing));
    }
  }
  const candidates: Candidate[] = [];
  for (const point of pool) {
    const stored = point.sparse.get(using);
    if (stored === undefined) continue;
    let overlap = false;
    let score = 0;
    for (const [index, value] of query) {
      const weight = stored.get(index);
      if (weight === undefined) continue;
      overlap = true;
      score += value * weight;
    }
    // The inverted index only finds points that share a dimension with the query.
    if (overlap) candidates.push({ point, score });
  }
  candidates.sort((a, b) => b.score - a.score);
  return { candidates, higherIsBetter: true };
}

/** Qdrant's `rrf_scoring`: 0-based positions, Σ 1 / ((p + 1) / w + k − 1), first-seen order among equal scores. */
export function reciprocalRankFusion(lists: ReadonlyArray<readonly Candidate[]>, k: number, weights?: readonly number[]): Candidate[] {
  if (weights !== undefined && weights.length !== lists.length) {
    throw new QdrantHttpError(400, `Bad request: Number of weights in RRF should match number of pre-fetches: got ${weights.length}, expected ${lists.length}`);
  }
  const fused = new Map<StoredPoint, Candidate>();
  lists.forEach((list, listIndex) => {
    const weight = weights?.[listIndex] ?? 1;
    list.forEach((candidate, position) => {
      const score = weight <= 0 ? 0 : 1 / ((position + 1) / weight + k - 1);
      const existing = fused.get(candidate.point);
      if (existing === undefined) fused.set(candidate.point, { point: candidate.point, score });
      else existing.score += score;
    });
  });
  return [...fused.values()].sort((a, b) => b.score - a.score);
}

function idfPopulation(collection: StoredCollection, params: Schemas['SearchParams'] | Record<string, unknown> | null | undefined): StoredPoint[] {
  const points = [...collection.points.values()];
  // `idf` is new in 1.19's SearchParams (the 1.18 client's type does not list it yet).
  const idf: unknown = isObject(params) ? (params as Record<string, unknown>).idf : undefined;
  if (idf === undefined || idf === null || idf === 'global') return points;
  if (isObject(idf) && isObject(idf.corpus)) {
    const corpus = idf.corpus;
    return points.filter((point) => matchesFilter(corpus, point));
  }
  throw notImplemented('this idf setting');
}

/** One query stage (the request itself or a prefetch): its ranked candidates, offset and limit applied. */
function runStage(collection: StoredCollection, stage: Schemas['Prefetch'], offset: number): Candidate[] {
  if (stage.lookup_from !== undefined && stage.lookup_from !== null) throw notImplemented('lookup_from');
  const limit = stage.limit ?? DEFAULT_LIMIT;
  const query = parseQuery(stage.query);
  const prefetches = conditionList(stage.prefetch) as Schemas['Prefetch'][];
  const using = vectorName(stage.using);
  const inFilter = (point: StoredPoint): boolean => matchesFilter(stage.filter, point);
  const population = (): StoredPoint[] => idfPopulation(collection, stage.params);
  let ranking: Ranking;
  if (prefetches.length > 0) {
    const lists = prefetches.map((prefetch) => runStage(collection, prefetch, 0));
    if (query.kind === 'rrf') {
      ranking = { candidates: reciprocalRankFusion(lists, query.k, query.weights).filter((candidate) => inFilter(candidate.point)), higherIsBetter: true };
    } else if (query.kind === 'dense' || query.kind === 'sparse') {
      // Re-scoring: the prefetched points, ranked again by this stage's vector.
      const pool = [...new Set(lists.flat().map((candidate) => candidate.point))].filter(inFilter);
      ranking = query.kind === 'dense' ? denseRanking(collection, using, query.vector, pool) : sparseRanking(collection, using, query.vector, pool, population());
    } else {
      throw notImplemented('prefetch without a query');
    }
  } else {
    const pool = [...collection.points.values()].filter(inFilter);
    if (query.kind === 'rrf') throw new QdrantHttpError(400, 'Bad request: Fusion queries need prefetches');
    if (query.kind === 'none') {
      const byId = pool.sort((a, b) => comparePointIds(a.id, b.id)).map((point) => ({ point, score: 0 }));
      ranking = { candidates: byId, higherIsBetter: true };
    } else {
      ranking = query.kind === 'dense' ? denseRanking(collection, using, query.vector, pool) : sparseRanking(collection, using, query.vector, pool, population());
    }
  }
  let { candidates } = ranking;
  const threshold = stage.score_threshold;
  if (threshold !== undefined && threshold !== null) {
    candidates = candidates.filter((candidate) => (ranking.higherIsBetter ? candidate.score >= threshold : candidate.score <= threshold));
  }
  return candidates.slice(offset, offset + limit);
}

function comparePointIds(a: PointId, b: PointId): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'number') return -1;
  if (typeof b === 'number') return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function selectPayload(payload: Payload, selector: Schemas['WithPayloadInterface'] | Record<string, unknown> | null | undefined): Payload | undefined {
  if (selector === undefined || selector === null || selector === false) return undefined;
  const copy = structuredClone(payload);
  if (selector === true) return copy;
  if (Array.isArray(selector)) return Object.fromEntries(Object.entries(copy).filter(([key]) => selector.includes(key)));
  if ('include' in selector && Array.isArray(selector.include)) {
    const include = selector.include as unknown[];
    return Object.fromEntries(Object.entries(copy).filter(([key]) => include.includes(key)));
  }
  if ('exclude' in selector && Array.isArray(selector.exclude)) {
    const exclude = selector.exclude as unknown[];
    return Object.fromEntries(Object.entries(copy).filter(([key]) => !exclude.includes(key)));
  }
  throw notImplemented('this with_payload selector');
}

function pointVectors(collection: StoredCollection, point: StoredPoint, names?: readonly string[]): Schemas['VectorStructOutput'] {
  if (collection.unnamed && names === undefined) return [...(point.dense.get('') ?? [])];
  const out: Record<string, Schemas['VectorOutput']> = {};
  for (const [name, vector] of point.dense) if (names === undefined || names.includes(name)) out[name] = [...vector];
  for (const [name, vector] of point.sparse) if (names === undefined || names.includes(name)) out[name] = fromSparseMap(vector);
  return out;
}

function selectVectors(collection: StoredCollection, point: StoredPoint, selector: Schemas['WithVector'] | Record<string, unknown> | null | undefined): Schemas['VectorStructOutput'] | undefined {
  if (selector === undefined || selector === null || selector === false) return undefined;
  if (selector === true) return pointVectors(collection, point);
  if (Array.isArray(selector)) return pointVectors(collection, point, selector);
  throw notImplemented('this with_vector selector');
}

// ---------------------------------------------------------------------------------------------------------------
// The state and the operations

class QdrantState {
  readonly collections = new Map<string, StoredCollection>();

  get(name: string): StoredCollection {
    const collection = this.collections.get(name);
    if (collection === undefined) throw collectionNotFound(name);
    return collection;
  }

  createCollection(name: string, body: Schemas['CreateCollection']): boolean {
    if (name.length === 0 || name.length > 255 || /[<>:"/\\|?*\0]/.test(name) || name === '.' || name === '..') {
      throw new QdrantHttpError(400, `Validation error in path parameters: [name: collection name ${JSON.stringify(name)} is not allowed]`);
    }
    if (this.collections.has(name)) throw new QdrantHttpError(409, `Wrong input: Collection \`${name}\` already exists!`);
    const dense = new Map<string, Schemas['VectorParams']>();
    let unnamed = false;
    const vectors: unknown = body.vectors;
    if (isVectorParams(vectors)) {
      unnamed = true;
      dense.set('', structuredClone(vectors));
    } else if (isObject(vectors)) {
      for (const [name, params] of Object.entries(vectors)) if (isVectorParams(params)) dense.set(name, structuredClone(params));
    }
    const sparse = new Map<string, Schemas['SparseVectorParams']>();
    for (const [vectorName, params] of Object.entries(body.sparse_vectors ?? {})) {
      if (params === undefined) continue;
      if (dense.has(vectorName)) throw wrongInput(`Vector name ${vectorName} is used by a dense and a sparse vector`);
      sparse.set(vectorName, structuredClone(params));
    }
    for (const params of dense.values()) {
      if (params.multivector_config !== undefined && params.multivector_config !== null) throw notImplemented('multi-vectors');
    }
    this.collections.set(name, { name, unnamed, dense, sparse, indexes: new Map(), points: new Map(), operations: 0 });
    return true;
  }

  deleteCollection(name: string): boolean {
    return this.collections.delete(name);
  }

  collectionInfo(name: string): Schemas['CollectionInfo'] {
    const collection = this.get(name);
    const points = [...collection.points.values()];
    const payloadSchema: Schemas['CollectionInfo']['payload_schema'] = {};
    for (const [field, schema] of collection.indexes) {
      const dataType: Schemas['PayloadSchemaType'] = typeof schema === 'string' ? schema : schema.type;
      const count = points.filter((point) => valuesAt(point.payload, field).length > 0).length;
      payloadSchema[field] = typeof schema === 'string' ? { data_type: dataType, points: count } : { data_type: dataType, params: structuredClone(schema), points: count };
    }
    const vectors: Schemas['VectorsConfig'] = collection.unnamed
      ? structuredClone(collection.dense.get('') ?? { size: 1, distance: 'Cosine' })
      : Object.fromEntries([...collection.dense].map(([vectorName, params]) => [vectorName, structuredClone(params)]));
    return {
      status: 'green',
      optimizer_status: 'ok',
      indexed_vectors_count: 0,
      points_count: points.length,
      segments_count: 1,
      config: {
        params: {
          vectors,
          shard_number: 1,
          replication_factor: 1,
          write_consistency_factor: 1,
          on_disk_payload: true,
          sparse_vectors: Object.fromEntries([...collection.sparse].map(([vectorName, params]) => [vectorName, structuredClone(params)])),
        },
        hnsw_config: { m: 16, ef_construct: 100, full_scan_threshold: 10_000, max_indexing_threads: 0, on_disk: false },
        optimizer_config: {
          deleted_threshold: 0.2,
          vacuum_min_vector_number: 1000,
          default_segment_number: 0,
          max_segment_size: null,
          memmap_threshold: null,
          indexing_threshold: 10_000,
          flush_interval_sec: 5,
          max_optimization_threads: null,
        },
        wal_config: { wal_capacity_mb: 32, wal_segments_ahead: 0 },
        quantization_config: null,
      },
      payload_schema: payloadSchema,
    };
  }

  createFieldIndex(name: string, body: Schemas['CreateFieldIndex'], wait: boolean): Schemas['UpdateResult'] {
    const collection = this.get(name);
    const schema = body.field_schema;
    if (schema === undefined || schema === null) throw notImplemented('a payload index without field_schema (type detection)');
    collection.indexes.set(body.field_name, structuredClone(schema as Schemas['PayloadFieldSchema']));
    return this.updated(collection, wait);
  }

  private updated(collection: StoredCollection, wait: boolean): Schemas['UpdateResult'] {
    collection.operations += 1;
    return { operation_id: collection.operations, status: wait ? 'completed' : 'acknowledged' };
  }

  private preparePoint(collection: StoredCollection, point: Schemas['PointStruct']): { key: string; stored: Omit<StoredPoint, 'version'> } {
    const { id, key } = parsePointId(point.id);
    const given: unknown = point.vector;
    let named: Record<string, unknown>;
    if (Array.isArray(given)) {
      if (!isNumberArray(given)) throw notImplemented('multi-vectors');
      named = { '': given };
    } else if (isObject(given)) {
      if (isInferenceObject(given)) throw notImplemented('inference (document, image or object vectors)');
      named = given;
    } else {
      throw wrongInput('vector must be an array or an object');
    }
    const dense = new Map<string, number[]>();
    const sparse = new Map<string, Map<number, number>>();
    for (const [name, vector] of Object.entries(named)) {
      const denseParams = collection.dense.get(name);
      const sparseParams = collection.sparse.get(name);
      if (denseParams !== undefined) {
        if (!isNumberArray(vector)) throw wrongInput(`Conversion between sparse and regular vectors failed (vector ${name})`);
        checkDimension(denseParams, vector);
        dense.set(name, denseParams.distance === 'Cosine' ? normalise(vector) : [...vector]);
      } else if (sparseParams !== undefined) {
        if (!isSparseVector(vector)) throw wrongInput(`Conversion between sparse and regular vectors failed (vector ${name})`);
        sparse.set(name, toSparseMap(vector));
      } else {
        throw wrongInput(`Not existing vector name error: ${name}`);
      }
    }
    const payload: unknown = point.payload ?? {};
    if (!isObject(payload)) throw wrongInput('payload must be an object');
    return { key, stored: { id, dense, sparse, payload: structuredClone(payload) } };
  }

  upsertPoints(name: string, body: Schemas['PointInsertOperations'], wait: boolean): Schemas['UpdateResult'] {
    const collection = this.get(name);
    if (!('points' in body)) throw notImplemented('the batch form of upsert');
    const extra = body as Record<string, unknown>;
    for (const option of ['update_filter', 'update_mode', 'shard_key']) {
      if (extra[option] !== undefined && extra[option] !== null) throw notImplemented(`upsert with ${option}`);
    }
    // All points are checked before any is written: a refused request changes nothing.
    const prepared = body.points.map((point) => this.preparePoint(collection, point));
    const result = this.updated(collection, wait);
    for (const { key, stored } of prepared) collection.points.set(key, { ...stored, version: result.operation_id ?? 0 });
    return result;
  }

  deletePoints(name: string, body: Schemas['PointsSelector'], wait: boolean): Schemas['UpdateResult'] {
    const collection = this.get(name);
    if ((body as Record<string, unknown>).shard_key !== undefined && (body as Record<string, unknown>).shard_key !== null) throw notImplemented('delete with shard_key');
    if ('points' in body) {
      for (const id of body.points) collection.points.delete(parsePointId(id).key);
    } else {
      for (const [key, point] of [...collection.points]) if (matchesFilter(body.filter, point)) collection.points.delete(key);
    }
    return this.updated(collection, wait);
  }

  queryPoints(name: string, body: Schemas['QueryRequest']): Schemas['QueryResponse'] {
    const collection = this.get(name);
    if (body.shard_key !== undefined && body.shard_key !== null) throw notImplemented('query with shard_key');
    const candidates = runStage(collection, body, body.offset ?? 0);
    const points = candidates.map(({ point, score }): Schemas['ScoredPoint'] => {
      const scored: Schemas['ScoredPoint'] = { id: point.id, version: point.version, score };
      const payload = selectPayload(point.payload, body.with_payload);
      if (payload !== undefined) scored.payload = payload;
      const vector = selectVectors(collection, point, body.with_vector);
      if (vector !== undefined) scored.vector = vector;
      return scored;
    });
    return { points };
  }

  snapshot(): QdrantStandInCollection[] {
    return [...this.collections.values()].map((collection) => ({
      name: collection.name,
      vectors: Object.fromEntries([...collection.dense].map(([name, params]) => [name, structuredClone(params)])),
      sparseVectors: Object.fromEntries([...collection.sparse].map(([name, params]) => [name, structuredClone(params)])),
      payloadIndexes: Object.fromEntries([...collection.indexes].map(([field, schema]) => [field, structuredClone(schema)])),
      points: [...collection.points.values()].map((point) => ({
        id: point.id,
        vectors: {
          ...Object.fromEntries([...point.dense].map(([name, vector]) => [name, [...vector]])),
          ...Object.fromEntries([...point.sparse].map(([name, vector]) => [name, fromSparseMap(vector)])),
        },
        payload: structuredClone(point.payload),
      })),
    }));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

interface RequestContext {
  /** The decoded path parameters, in order. */
  params: string[];
  query: URLSearchParams;
  body: unknown;
}

interface Route {
  method: string;
  /** The path as the OpenAPI document writes it. */
  specPath: string;
  /** Answers the result itself instead of `{result, status, time}` (the root route). */
  bare?: boolean;
  handle(state: QdrantState, context: RequestContext): unknown;
}

function waitParam(query: URLSearchParams): boolean {
  return query.get('wait') === 'true';
}

function firstParam(context: RequestContext): string {
  return context.params[0] ?? '';
}

/** The routes the adapter uses (through the client), plus DELETE of a collection for test clean-up. */
const ROUTES: Route[] = [
  {
    method: 'GET',
    specPath: '/',
    bare: true,
    handle: (): Schemas['VersionInfo'] => ({ title: 'qdrant - vector search engine (botserver test stand-in)', version: QDRANT_STAND_IN_VERSION, commit: null }),
  },
  {
    method: 'GET',
    specPath: '/collections/{collection_name}/exists',
    handle: (state, context): Schemas['CollectionExistence'] => ({ exists: state.collections.has(firstParam(context)) }),
  },
  {
    method: 'GET',
    specPath: '/collections/{collection_name}',
    handle: (state, context): Schemas['CollectionInfo'] => state.collectionInfo(firstParam(context)),
  },
  {
    method: 'PUT',
    specPath: '/collections/{collection_name}',
    handle: (state, context): boolean => state.createCollection(firstParam(context), context.body as Schemas['CreateCollection']),
  },
  {
    method: 'DELETE',
    specPath: '/collections/{collection_name}',
    handle: (state, context): boolean => state.deleteCollection(firstParam(context)),
  },
  {
    method: 'PUT',
    specPath: '/collections/{collection_name}/index',
    handle: (state, context): Schemas['UpdateResult'] => state.createFieldIndex(firstParam(context), context.body as Schemas['CreateFieldIndex'], waitParam(context.query)),
  },
  {
    method: 'PUT',
    specPath: '/collections/{collection_name}/points',
    handle: (state, context): Schemas['UpdateResult'] => state.upsertPoints(firstParam(context), context.body as Schemas['PointInsertOperations'], waitParam(context.query)),
  },
  {
    method: 'POST',
    specPath: '/collections/{collection_name}/points/delete',
    handle: (state, context): Schemas['UpdateResult'] => state.deletePoints(firstParam(context), context.body as Schemas['PointsSelector'], waitParam(context.query)),
  },
  {
    method: 'POST',
    specPath: '/collections/{collection_name}/points/query',
    handle: (state, context): Schemas['QueryResponse'] => state.queryPoints(firstParam(context), context.body as Schemas['QueryRequest']),
  },
];

/** `/collections/{collection_name}/points` → a regular expression with one group per parameter. */
function pathPattern(specPath: string): RegExp {
  const source = specPath
    .split(/\{[^}]+\}/)
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('([^/]+)');
  return new RegExp(`^${source}$`);
}

interface CompiledRoute extends Route {
  pattern: RegExp;
  validator: OperationValidator;
}

function readBody(request: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new QdrantHttpError(413, 'Payload too large'));
        request.destroy();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks)));
    request.on('error', reject);
  });
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

function errorBody(message: string, started: number): Schemas['ErrorResponse'] {
  return { status: { error: message }, time: (performance.now() - started) / 1000 };
}

/** Starts the stand-in on 127.0.0.1, a random port. */
export async function startQdrantStandIn(options: QdrantStandInOptions = {}): Promise<QdrantStandIn> {
  const spec = qdrantSpec();
  const routes: CompiledRoute[] = ROUTES.map((route) => ({ ...route, pattern: pathPattern(route.specPath), validator: spec.operation(route.method, route.specPath) }));
  const documented = spec.operations().map((entry) => {
    const [method = '', path = ''] = entry.split(' ');
    return { method, path, pattern: pathPattern(path) };
  });
  const state = new QdrantState();
  const requests: RecordedQdrantRequest[] = [];

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const started = performance.now();
    const url = new URL(request.url ?? '/', 'http://stand-in');
    const method = (request.method ?? 'GET').toUpperCase();
    const record: RecordedQdrantRequest = { method, path: decodeURIComponent(url.pathname), query: url.search.replace(/^\?/, ''), operation: undefined, body: undefined, status: 0 };
    requests.push(record);
    const answer = (status: number, body: unknown): void => {
      record.status = status;
      send(response, status, body);
    };
    try {
      const raw = await readBody(request);
      if (raw.length > 0) {
        try {
          record.body = JSON.parse(raw.toString('utf8')) as unknown;
        } catch (error) {
          throw new QdrantHttpError(400, `Format error in JSON body: ${error instanceof Error ? error.message : 'invalid JSON'}`);
        }
      }
      if (options.apiKey !== undefined && request.headers['api-key'] !== options.apiKey) {
        throw new QdrantHttpError(401, 'Must provide an API key or an Authorization bearer token');
      }
      let matched: { route: CompiledRoute; params: string[] } | undefined;
      for (const route of routes) {
        const found = route.method === method ? route.pattern.exec(url.pathname) : null;
        if (found !== null) {
          matched = { route, params: found.slice(1).map((part) => decodeURIComponent(part)) };
          break;
        }
      }
      if (matched === undefined) {
        const known = documented.find((operation) => operation.method === method && operation.pattern.test(url.pathname));
        if (known !== undefined) throw notImplemented(`${method} ${known.path}`);
        throw new QdrantHttpError(404, `Not found: ${method} ${url.pathname}`);
      }
      const { route, params } = matched;
      record.operation = route.validator.operationId;
      const queryError = route.validator.query(url.searchParams);
      if (queryError !== undefined) throw new QdrantHttpError(400, `Query deserialize error: ${queryError}`);
      if (route.validator.hasBody) {
        if (record.body === undefined) throw new QdrantHttpError(400, 'Format error in JSON body: EOF while parsing a value at line 1 column 0');
        const bodyError = route.validator.body(record.body);
        if (bodyError !== undefined) throw new QdrantHttpError(400, `Format error in JSON body: ${bodyError}`);
      }
      const result = route.handle(state, { params, query: url.searchParams, body: record.body });
      const body = route.bare === true ? result : { result, status: 'ok', time: (performance.now() - started) / 1000 };
      const responseError = route.validator.response(body);
      if (responseError !== undefined) throw new QdrantHttpError(500, `Stand-in bug: its answer does not match the OpenAPI document: ${responseError}`);
      answer(200, body);
    } catch (error) {
      if (error instanceof QdrantHttpError) answer(error.status, errorBody(error.message, started));
      else answer(500, errorBody(`Service internal error: ${error instanceof Error ? error.message : String(error)}`, started));
    }
  }

  const server = createServer((request, response) => {
    void handle(request, response);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    collections: () => state.snapshot(),
    stop: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface QdrantForTests {
  url: string;
  apiKey: string | undefined;
  /** The stand-in, or undefined when the tests run against a real Qdrant (QDRANT_URL). */
  standIn: QdrantStandIn | undefined;
  stop(): Promise<void>;
}

/** A real Qdrant when QDRANT_URL is set (with QDRANT_API_KEY when that is set), else a fresh stand-in. */
export async function qdrantForTests(): Promise<QdrantForTests> {
  const url = process.env.QDRANT_URL;
  if (url !== undefined && url !== '') {
    const apiKey = process.env.QDRANT_API_KEY;
    return { url: url.replace(/\/+$/, ''), apiKey: apiKey === undefined || apiKey === '' ? undefined : apiKey, standIn: undefined, stop: () => Promise.resolve() };
  }
  const standIn = await startQdrantStandIn();
  return { url: standIn.url, apiKey: undefined, standIn, stop: () => standIn.stop() };
}
