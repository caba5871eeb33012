/**
 * The Qdrant knowledge adapter against the in-repo Qdrant stand-in (every request validated against Qdrant 1.19's
 * OpenAPI document), or, when QDRANT_URL is set, against that real Qdrant (QDRANT_API_KEY with it). Each test uses
 * its own embedding model name, so its own collection; the collections are deleted at the end.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { expect } from 'chai';
import fc from 'fast-check';
import { createKnowledgeIndex, knowledgeCollectionName, PREFETCH_MIN, UPSERT_BATCH_SIZE } from '../../adapters/qdrant/index.js';
import type { KnowledgeHit, KnowledgeIndex, KnowledgePoint, KnowledgeQuery, SparseVector } from '../../adapters/qdrant/types.js';
import { AppError, UnavailableError } from '../../shared/errors.js';
import { qdrantForTests, QDRANT_DEFAULT_RRF_K, qdrantIdf, startQdrantStandIn, type QdrantForTests, type QdrantStandIn } from '../helpers/qdrant-server.js';

const DIMENSION = 4;
const RUN = randomBytes(3).toString('hex');
let modelCounter = 0;

/** A model name no other test (or run, on a shared real Qdrant) uses: a fresh collection. */
function freshModel(label: string): string {
  modelCounter += 1;
  return `test-${label}-${RUN}-${modelCounter}`;
}

function sparse(entries: Record<number, number>): SparseVector {
  const indices = Object.keys(entries).map(Number);
  return { indices, values: indices.map((index) => entries[index] ?? 0) };
}

interface PointSpec {
  tenant: string;
  bot: string;
  document: string;
  chunk?: number;
  dense: number[];
  sparse?: SparseVector;
}

function point(spec: PointSpec): KnowledgePoint {
  const chunk = spec.chunk ?? 0;
  return {
    id: randomUUID(),
    dense: spec.dense,
    sparse: spec.sparse ?? { indices: [], values: [] },
    payload: {
      tenant_id: spec.tenant,
      bot_id: spec.bot,
      document_id: spec.document,
      chunk_index: chunk,
      position: `section ${chunk}`,
      text_sealed: `v1.sealed.${spec.document}.${chunk}`,
    },
  };
}

function query(tenantId: string, botId: string, dense: number[], terms: SparseVector, limit: number, denseOnly = false): KnowledgeQuery {
  return { tenantId, botId, dense, sparse: terms, limit, denseOnly };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  return expect.fail('expected the call to fail');
}

describe(`Qdrant knowledge adapter (${process.env.QDRANT_URL ? 'real Qdrant from QDRANT_URL' : 'Qdrant stand-in'})`, function () {
  let qdrant: QdrantForTests;
  let index: KnowledgeIndex;
  const created = new Set<string>();

  function adapter(): KnowledgeIndex {
    return createKnowledgeIndex({ url: qdrant.url, apiKey: qdrant.apiKey, timeoutMs: 10_000 });
  }

  async function ensure(model: string, target: KnowledgeIndex = index): Promise<string> {
    const name = await target.ensureCollection(model, DIMENSION);
    created.add(name);
    return name;
  }

  async function raw(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (qdrant.apiKey !== undefined) headers['api-key'] = qdrant.apiKey;
    const response = await fetch(`${qdrant.url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await response.text();
    return { status: response.status, json: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown> };
  }

  /** The stand-in, for the checks that read its request log (skipped against a real Qdrant). */
  function standIn(context: Mocha.Context): QdrantStandIn {
    if (qdrant.standIn === undefined) context.skip();
    return qdrant.standIn;
  }

  before(async function () {
    qdrant = await qdrantForTests();
    index = adapter();
  });

  after(async function () {
    if (qdrant === undefined) return;
    for (const name of created) await raw('DELETE', `/collections/${encodeURIComponent(name)}`).catch(() => undefined);
    await qdrant.stop();
  });

  describe('collection names', function () {
    it('are per model and dimension, [a-z0-9_] only, with a hash when sanitising changed the model name', function () {
      expect(knowledgeCollectionName('nomic_embed_text', 768)).to.equal('botserver_nomic_embed_text_768');
      const sanitised = knowledgeCollectionName('text-embedding-3-small', 1536);
      expect(sanitised).to.match(/^botserver_text_embedding_3_small_1536_[0-9a-f]{8}$/);
      expect(knowledgeCollectionName('BAAI/bge-m3', 1024)).not.to.equal(knowledgeCollectionName('baai_bge_m3', 1024));
      expect(knowledgeCollectionName('text-embedding-3-small', 512)).not.to.equal(sanitised);
      fc.assert(
        fc.property(fc.string({ minLength: 1, maxLength: 300 }).filter((model) => model.trim() !== ''), fc.integer({ min: 1, max: 65_536 }), (model, dimension) => {
          const name = knowledgeCollectionName(model, dimension);
          expect(name).to.match(/^botserver_[a-z0-9_]+$/);
          expect(name.length).to.be.at.most(255);
        }),
      );
      expect(() => knowledgeCollectionName('model', 0)).to.throw(AppError);
      expect(() => knowledgeCollectionName('model', 1.5)).to.throw(AppError);
    });
  });

  describe('ensureCollection', function () {
    it('creates dense (cosine) + bm25 (idf) vectors and the tenant, bot and document indexes, once', async function () {
      const model = freshModel('ensure');
      const name = await ensure(model);
      expect(name).to.equal(knowledgeCollectionName(model, DIMENSION));
      expect(await index.ensureCollection(model, DIMENSION)).to.equal(name);
      expect(await ensure(model, adapter())).to.equal(name);

      const { status, json } = await raw('GET', `/collections/${name}`);
      expect(status).to.equal(200);
      const info = json.result as {
        config: { params: { vectors: { dense?: { size?: number; distance?: string } }; sparse_vectors: { bm25?: { modifier?: string } } } };
        payload_schema: Record<string, { data_type: string; params?: Record<string, unknown> }>;
      };
      expect(info.config.params.vectors.dense?.size).to.equal(DIMENSION);
      expect(info.config.params.vectors.dense?.distance).to.equal('Cosine');
      expect(info.config.params.sparse_vectors.bm25?.modifier).to.equal('idf');
      expect(info.payload_schema.tenant_id?.data_type).to.equal('keyword');
      expect(info.payload_schema.tenant_id?.params?.is_tenant).to.equal(true);
      expect(info.payload_schema.bot_id?.data_type).to.equal('keyword');
      expect(info.payload_schema.document_id?.data_type).to.equal('keyword');

      if (qdrant.standIn !== undefined) {
        const mine = qdrant.standIn.requests.filter((request) => request.path.startsWith(`/collections/${name}`));
        expect(mine.filter((request) => request.method === 'PUT' && request.path === `/collections/${name}`)).to.have.length(1);
        expect(mine.filter((request) => request.operation === 'create_field_index')).to.have.length(3);
        // The first adapter asked once (its second call came from its cache); the second adapter found everything.
        expect(mine.filter((request) => request.operation === 'collection_exists')).to.have.length(2);
      }
    });

    it('tolerates a concurrent create by another process', async function () {
      const model = freshModel('race');
      const names = await Promise.all([ensure(model, adapter()), ensure(model, adapter()), ensure(model, adapter())]);
      expect(new Set(names).size).to.equal(1);
      if (qdrant.standIn !== undefined) {
        const creates = qdrant.standIn.requests.filter((request) => request.method === 'PUT' && request.path === `/collections/${names[0]}`);
        expect(creates.filter((request) => request.status === 200)).to.have.length(1);
        expect(creates.filter((request) => request.status === 409).length).to.equal(creates.length - 1);
      }
    });

    it('refuses a collection of that name made with another vector configuration', async function () {
      const model = freshModel('mismatch');
      const name = knowledgeCollectionName(model, DIMENSION);
      created.add(name);
      const made = await raw('PUT', `/collections/${name}`, { vectors: { dense: { size: DIMENSION, distance: 'Dot' } }, sparse_vectors: { bm25: { modifier: 'idf' } } });
      expect(made.status).to.equal(200);
      const error = await rejection(index.ensureCollection(model, DIMENSION));
      expect(error).to.be.instanceOf(AppError);
      expect((error as AppError).code).to.equal('vector_store_error');
    });
  });

  describe('upsert and search', function () {
    const query1 = [1, 0, 0, 0];
    const terms = sparse({ 1: 1, 99: 1 });

    it('hybrid search ranks first the passage that shares the rare term; dense-only ranks by meaning alone', async function () {
      const name = await ensure(freshModel('hybrid'));
      // Dense order for query1: A, T, B, fillers. Sparse: T (rare 99 + common 1), B (common 1 twice), fillers.
      const A = point({ tenant: 'tenant-a', bot: 'bot-1', document: 'A', dense: [0.95, 0.3, 0, 0], sparse: sparse({ 500: 1 }) });
      const T = point({ tenant: 'tenant-a', bot: 'bot-1', document: 'T', dense: [0.8, 0.6, 0, 0], sparse: sparse({ 1: 1, 99: 1 }) });
      const B = point({ tenant: 'tenant-a', bot: 'bot-1', document: 'B', dense: [0.6, 0.8, 0, 0], sparse: sparse({ 1: 2 }) });
      const fillers = [
        [0, 1, 0, 0],
        [0, 0, 1, 0],
        [0, 0, 0, 1],
      ].map((dense, chunk) => point({ tenant: 'tenant-a', bot: 'bot-1', document: 'F', chunk, dense, sparse: sparse({ 1: 1 }) }));
      // Closer to the query than anything, rare term and all — but another tenant's, and another bot's.
      const otherTenant = point({ tenant: 'tenant-b', bot: 'bot-1', document: 'X', dense: query1, sparse: sparse({ 1: 1, 99: 5 }) });
      const otherBot = point({ tenant: 'tenant-a', bot: 'bot-2', document: 'Y', dense: query1, sparse: sparse({ 1: 1, 99: 5 }) });
      await index.upsert(name, [A, T, B, ...fillers, otherTenant, otherBot]);

      const hybrid = await index.search(name, query('tenant-a', 'bot-1', query1, terms, 5));
      expect(hybrid.map((hit) => hit.payload.document_id)).to.deep.equal(['T', 'B', 'A', 'F', 'F']);
      const k = QDRANT_DEFAULT_RRF_K;
      expect(hybrid[0]?.score).to.be.closeTo(1 / (1 + k) + 1 / (0 + k), 1e-5); // dense 2nd, sparse 1st
      expect(hybrid[1]?.score).to.be.closeTo(1 / (2 + k) + 1 / (1 + k), 1e-5); // dense 3rd, sparse 2nd
      expect(hybrid[2]?.score).to.be.closeTo(1 / (0 + k), 1e-5); // dense 1st only
      expect(hybrid[0]).to.deep.equal({ id: T.id, score: hybrid[0]?.score ?? Number.NaN, payload: T.payload } satisfies KnowledgeHit);

      const denseOnly = await index.search(name, query('tenant-a', 'bot-1', query1, terms, 3, true));
      expect(denseOnly.map((hit) => hit.payload.document_id)).to.deep.equal(['A', 'T', 'B']);
      expect(denseOnly[0]?.score).to.be.closeTo(0.95 / Math.hypot(0.95, 0.3), 1e-5);

      // The sparse side alone, as Qdrant scores it: query weights × IDF over the whole collection.
      const sparseOnly = await raw('POST', `/collections/${name}/points/query`, {
        query: terms,
        using: 'bm25',
        filter: { must: [{ key: 'tenant_id', match: { value: 'tenant-a' } }, { key: 'bot_id', match: { value: 'bot-1' } }] },
        limit: 10,
      });
      expect(sparseOnly.status).to.equal(200);
      const scored = (sparseOnly.json.result as { points: Array<{ id: string; score: number }> }).points;
      const total = 8; // A, T, B, 3 fillers, X, Y
      const idf1 = qdrantIdf(total, 7);
      const idf99 = qdrantIdf(total, 3);
      expect(scored.map((entry) => entry.id).slice(0, 2)).to.deep.equal([T.id, B.id]);
      expect(scored[0]?.score).to.be.closeTo(idf1 + idf99, 1e-4);
      expect(scored[1]?.score).to.be.closeTo(2 * idf1, 1e-4);
      expect(scored.map((entry) => entry.id)).not.to.include(A.id); // shares no term

      if (qdrant.standIn !== undefined) {
        const searches = qdrant.standIn.requests.filter((request) => request.operation === 'query_points' && request.path === `/collections/${name}/points/query`);
        const [hybridBody, denseBody] = searches.map((request) => request.body as Record<string, unknown>);
        expect(hybridBody?.query).to.deep.equal({ fusion: 'rrf' });
        expect(hybridBody?.prefetch).to.have.length(2);
        expect(denseBody).to.deep.equal({
          query: query1,
          using: 'dense',
          filter: { must: [{ key: 'tenant_id', match: { value: 'tenant-a' } }, { key: 'bot_id', match: { value: 'bot-1' } }] },
          limit: 3,
          with_payload: true,
        });
      }
    });

    it('a query without terms still searches (dense side through the same fusion); limit below 1 returns nothing', async function () {
      const name = await ensure(freshModel('noterms'));
      const points = [0, 1, 2].map((chunk) => point({ tenant: 't', bot: 'b', document: 'D', chunk, dense: [1, chunk, 0, 0] }));
      await index.upsert(name, points);
      const hits = await index.search(name, query('t', 'b', [1, 0, 0, 0], { indices: [], values: [] }, 2));
      expect(hits.map((hit) => hit.payload.chunk_index)).to.deep.equal([0, 1]);
      expect(await index.search(name, query('t', 'b', [1, 0, 0, 0], terms, 0))).to.deep.equal([]);
    });

    it('upserts in batches of at most 256 points, waiting for each', async function () {
      const stand = standIn(this);
      const name = await ensure(freshModel('batch'));
      const points = Array.from({ length: 600 }, (_, chunk) => point({ tenant: 't', bot: 'b', document: 'big', chunk, dense: [1, chunk / 600, 0, 0], sparse: sparse({ [chunk]: 1 }) }));
      const before = stand.requests.length;
      await index.upsert(name, points);
      const upserts = stand.requests.slice(before).filter((request) => request.operation === 'upsert_points');
      expect(upserts.map((request) => (request.body as { points: unknown[] }).points.length)).to.deep.equal([UPSERT_BATCH_SIZE, UPSERT_BATCH_SIZE, 600 - 2 * UPSERT_BATCH_SIZE]);
      expect(upserts.every((request) => request.query === 'wait=true' && request.status === 200)).to.equal(true);
      expect(stand.collections().find((collection) => collection.name === name)?.points).to.have.length(600);
    });

    it('EVERY search is filtered by tenant and bot, whatever the points and the query (property)', async function () {
      this.timeout(120_000);
      const name = await ensure(freshModel('property'));
      const TENANTS = 3;
      const BOTS = 2;
      let round = 0;
      const component = fc.integer({ min: -10, max: 10 }).map((value) => value / 10);
      const denseArb = fc.tuple(component, component, component, component).map(([a, b, c, d]) => [Math.abs(a) + 0.1, b, c, d]);
      const termsArb = fc
        .uniqueArray(fc.integer({ min: 0, max: 30 }), { maxLength: 5 })
        .chain((indices) => fc.tuple(fc.constant(indices), fc.array(fc.integer({ min: 1, max: 5 }), { minLength: indices.length, maxLength: indices.length })))
        .map(([indices, values]): SparseVector => ({ indices, values }));
      const pointArb = fc.record({ tenant: fc.nat(TENANTS - 1), bot: fc.nat(BOTS - 1), document: fc.constantFrom('d1', 'd2', 'd3'), dense: denseArb, terms: termsArb });
      const queryArb = fc.record({ tenant: fc.nat(TENANTS), bot: fc.nat(BOTS), dense: denseArb, terms: termsArb, limit: fc.integer({ min: 1, max: 12 }), denseOnly: fc.boolean() });

      await fc.assert(
        fc.asyncProperty(fc.array(pointArb, { minLength: 1, maxLength: 25 }), fc.array(queryArb, { minLength: 1, maxLength: 5 }), async (specs, queries) => {
          round += 1;
          // Tenants are new each round; bot ids repeat across tenants and rounds, so only tenant AND bot isolate.
          const tenant = (number: number): string => `tenant-${RUN}-${round}-${number}`;
          const bot = (number: number): string => `bot-${number}`;
          const points = specs.map((spec, chunk) => point({ tenant: tenant(spec.tenant), bot: bot(spec.bot), document: spec.document, chunk, dense: spec.dense, sparse: spec.terms }));
          await index.upsert(name, points);
          for (const spec of queries) {
            const wanted = { tenant: tenant(spec.tenant), bot: bot(spec.bot) };
            const hits = await index.search(name, query(wanted.tenant, wanted.bot, spec.dense, spec.terms, spec.limit, spec.denseOnly));
            for (const hit of hits) {
              expect(hit.payload.tenant_id).to.equal(wanted.tenant);
              expect(hit.payload.bot_id).to.equal(wanted.bot);
            }
            expect(new Set(hits.map((hit) => hit.id)).size).to.equal(hits.length);
            // All of the tenant's bot's points have a dense vector and fit one prefetch (≤ 25 < PREFETCH_MIN), so
            // a server-side filter returns exactly this many; a missing filter would show as foreign hits or fewer.
            const eligible = points.filter((entry) => entry.payload.tenant_id === wanted.tenant && entry.payload.bot_id === wanted.bot).length;
            expect(eligible).to.be.below(PREFETCH_MIN + 1);
            expect(hits).to.have.length(Math.min(spec.limit, eligible));
          }
        }),
        { numRuns: 30 },
      );

      if (qdrant.standIn !== undefined) {
        const filter = (body: unknown): unknown => (body as { filter?: unknown }).filter;
        const searches = qdrant.standIn.requests.filter((request) => request.operation === 'query_points' && request.path === `/collections/${name}/points/query`);
        expect(searches.length).to.be.above(0);
        for (const request of searches) {
          const body = request.body as { prefetch?: Array<{ filter?: unknown }> };
          const stages = [filter(body), ...(body.prefetch ?? []).map(filter)];
          for (const stage of stages) {
            const must = (stage as { must: Array<{ key: string; match: { value: string } }> }).must;
            expect(must.map((condition) => condition.key)).to.deep.equal(['tenant_id', 'bot_id']);
            expect(must.every((condition) => typeof condition.match.value === 'string' && condition.match.value !== '')).to.equal(true);
          }
        }
      }
    });

    it('refuses a search without tenant or bot before asking Qdrant', async function () {
      const name = await ensure(freshModel('guard'));
      for (const [tenantId, botId] of [
        ['', 'b'],
        ['t', ''],
      ] as const) {
        const error = await rejection(index.search(name, query(tenantId, botId, [1, 0, 0, 0], terms, 3)));
        expect(error).to.be.instanceOf(AppError);
      }
    });
  });

  describe('deleteDocument', function () {
    it("removes exactly that document's points in that tenant", async function () {
      const name = await ensure(freshModel('delete'));
      const chunks = (tenant: string, document: string, count: number): KnowledgePoint[] =>
        Array.from({ length: count }, (_, chunk) => point({ tenant, bot: 'bot', document, chunk, dense: [1, chunk, 0, 0], sparse: sparse({ 7: 1 }) }));
      const doomed = chunks('tenant-a', 'doc-1', 3);
      const kept = chunks('tenant-a', 'doc-2', 2);
      const sameIdOtherTenant = chunks('tenant-b', 'doc-1', 2);
      await index.upsert(name, [...doomed, ...kept, ...sameIdOtherTenant]);

      await index.deleteDocument(name, 'tenant-a', 'doc-1');

      const idsOf = async (tenant: string): Promise<string[]> =>
        (await index.search(name, query(tenant, 'bot', [1, 0, 0, 0], sparse({ 7: 1 }), 50, true))).map((hit) => hit.id).sort();
      expect(await idsOf('tenant-a')).to.deep.equal(kept.map((entry) => entry.id).sort());
      expect(await idsOf('tenant-b')).to.deep.equal(sameIdOtherTenant.map((entry) => entry.id).sort());
      // Deleting again, or a document that never was, is not an error.
      await index.deleteDocument(name, 'tenant-a', 'doc-1');
      await index.deleteDocument(name, 'tenant-a', 'never');

      if (qdrant.standIn !== undefined) {
        const deletes = qdrant.standIn.requests.filter((request) => request.operation === 'delete_points' && request.path === `/collections/${name}/points/delete`);
        expect(deletes[0]?.query).to.equal('wait=true');
        expect(deletes[0]?.body).to.deep.equal({ filter: { must: [{ key: 'tenant_id', match: { value: 'tenant-a' } }, { key: 'document_id', match: { value: 'doc-1' } }] } });
      }
    });
  });

  describe('the request schema is live', function () {
    it('a body the OpenAPI document refuses is refused (400, Qdrant-shaped) and changes nothing', async function () {
      const name = `botserver_refused_${RUN}`;
      created.add(name);
      const refusedBodies = [
        { vectors: { dense: { size: DIMENSION, distance: 'Hamming' } } },
        { vectors: { dense: { size: DIMENSION, distance: 'Cosine' } }, sparse_vectors: { bm25: { modifier: 'bm42' } } },
      ];
      for (const body of refusedBodies) {
        const { status, json } = await raw('PUT', `/collections/${name}`, body);
        expect(status).to.equal(400);
        expect((json.status as { error?: unknown }).error).to.be.a('string');
      }
      expect((await raw('GET', `/collections/${name}/exists`)).json.result).to.deep.equal({ exists: false });

      const ensured = await ensure(freshModel('schema'));
      // Filter is one of the few schemas that forbid unknown fields.
      const unknownField = await raw('POST', `/collections/${ensured}/points/query`, { query: [1, 0, 0, 0], using: 'dense', filter: { must: [], tenant: 'x' } });
      expect(unknownField.status).to.equal(400);
      if (qdrant.standIn !== undefined) {
        const mine = qdrant.standIn.requests.filter((request) => request.path === `/collections/${name}` || (request.path === `/collections/${ensured}/points/query`));
        expect(mine.map((request) => `${request.operation ?? '?'} ${request.status}`)).to.deep.equal(['create_collection 400', 'create_collection 400', 'query_points 400']);
      }
    });

    it('the adapter uses exactly these routes, and the document accepts every request it makes', async function () {
      standIn(this);
      const own = await startQdrantStandIn();
      try {
        const flow = createKnowledgeIndex({ url: own.url });
        const name = await flow.ensureCollection('routes', DIMENSION);
        await flow.ensureCollection('routes', DIMENSION);
        await flow.upsert(name, [point({ tenant: 't', bot: 'b', document: 'd', dense: [1, 0, 0, 0], sparse: sparse({ 1: 1 }) })]);
        await flow.search(name, query('t', 'b', [1, 0, 0, 0], sparse({ 1: 1 }), 3));
        await flow.search(name, query('t', 'b', [1, 0, 0, 0], sparse({ 1: 1 }), 3, true));
        await flow.deleteDocument(name, 't', 'd');
        const routes = own.requests.map((request) => `${request.method} ${request.path.replace(name, '{collection_name}')}${request.query === '' ? '' : `?${request.query}`} ${request.operation ?? '?'}`);
        expect(routes).to.deep.equal([
          'GET /collections/{collection_name}/exists collection_exists',
          'PUT /collections/{collection_name} create_collection',
          'GET /collections/{collection_name} get_collection',
          'PUT /collections/{collection_name}/index?wait=true create_field_index',
          'PUT /collections/{collection_name}/index?wait=true create_field_index',
          'PUT /collections/{collection_name}/index?wait=true create_field_index',
          'PUT /collections/{collection_name}/points?wait=true upsert_points',
          'POST /collections/{collection_name}/points/query query_points',
          'POST /collections/{collection_name}/points/query query_points',
          'POST /collections/{collection_name}/points/delete?wait=true delete_points',
        ]);
        expect(own.requests.every((request) => request.status === 200)).to.equal(true);
      } finally {
        await own.stop();
      }
    });
  });

  describe('errors', function () {
    it('a Qdrant error becomes vector_store_error (502, not exposed), naming no vector or payload', async function () {
      const missing = `botserver_missing_${RUN}`;
      const upsert = await rejection(index.upsert(missing, [point({ tenant: 't', bot: 'b', document: 'd', dense: [1, 0, 0, 0], sparse: sparse({ 1: 1 }) })]));
      expect(upsert).to.be.instanceOf(AppError);
      expect(upsert).not.to.be.instanceOf(UnavailableError);
      expect((upsert as AppError).code).to.equal('vector_store_error');
      expect((upsert as AppError).status).to.equal(502);
      expect((upsert as AppError).expose).to.equal(false);
      expect((upsert as AppError).message).to.match(/HTTP 404/);
      expect((upsert as AppError).message).not.to.include('sealed');

      // A fresh adapter does not know the dimension, so Qdrant itself refuses the wrong one.
      const name = await ensure(freshModel('dimension'));
      const search = await rejection(adapter().search(name, query('t', 'b', [1, 0, 0], sparse({ 1: 1 }), 3)));
      expect((search as AppError).code).to.equal('vector_store_error');
      expect((search as AppError).message).to.match(/HTTP 400/);
    });

    it('an unreachable Qdrant is UnavailableError', async function () {
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
      const { port } = closed.address() as AddressInfo;
      await new Promise<void>((resolve) => closed.close(() => resolve()));
      const error = await rejection(createKnowledgeIndex({ url: `http://127.0.0.1:${port}` }).ensureCollection(freshModel('down'), DIMENSION));
      expect(error).to.be.instanceOf(UnavailableError);
      expect((error as UnavailableError).status).to.equal(503);
    });

    it('a Qdrant that does not answer in time is UnavailableError', async function () {
      const sockets = new Set<Socket>();
      const silent: Server = createServer(() => undefined);
      silent.on('connection', (socket) => sockets.add(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
      try {
        const { port } = silent.address() as AddressInfo;
        const error = await rejection(createKnowledgeIndex({ url: `http://127.0.0.1:${port}`, timeoutMs: 300 }).ensureCollection(freshModel('slow'), DIMENSION));
        expect(error).to.be.instanceOf(UnavailableError);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise<void>((resolve) => silent.close(() => resolve()));
      }
    });

    it('sends the API key (a stand-in that requires one refuses a client without it)', async function () {
      standIn(this);
      const guarded = await startQdrantStandIn({ apiKey: 'k-test-123' });
      try {
        const refused = await rejection(createKnowledgeIndex({ url: guarded.url }).ensureCollection(freshModel('key'), DIMENSION));
        expect((refused as AppError).code).to.equal('vector_store_error');
        expect((refused as AppError).message).to.match(/HTTP 401/);
        const name = await createKnowledgeIndex({ url: guarded.url, apiKey: 'k-test-123' }).ensureCollection(freshModel('key'), DIMENSION);
        expect(guarded.collections().map((collection) => collection.name)).to.deep.equal([name]);
      } finally {
        await guarded.stop();
      }
    });
  });
});
