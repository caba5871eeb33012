import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PDFDocument, StandardFonts } from 'pdf-lib';
import { createEmbedder } from '../../adapters/embeddings/index.js';
import { createKnowledgeIndex } from '../../adapters/qdrant/index.js';
import { configureProcessLogging } from '../../shared/kernel.js';
import { retrievePassages } from '../../shared/knowledge/retrieval.js';
import { apiTestConfig, startTestApi, type TestApi } from '../../test/helpers/api.js';
import { restOk, signedInUser, signOutAll } from '../../test/helpers/chat.js';
import { uniqueQueuePrefix } from '../../test/helpers/config.js';
import { createTestDatabase, type TestDatabase } from '../../test/helpers/db.js';
import { json, uploadFile, waitForStored } from '../../test/helpers/files.js';
import { REPO_ROOT, waitFor } from '../../test/helpers/process.js';
import { qdrantForTests, type QdrantForTests } from '../../test/helpers/qdrant-server.js';
import { startWorkers, type RunningWorkers } from '../../workers/main.js';
import { percentile, round1 } from './stats.js';

/**
 * Knowledge benchmark, against the Qdrant stand-in (or QDRANT_URL) and the built-in hashing embedder (or
 * EMBEDDINGS_BASE_URL), API and workers in this process:
 *   - ingestion: a generated N-page PDF (default 100) from upload to `indexed`, in pages per second, and the
 *     repository's labelled set (test/fixtures/knowledge/labelled.json) as text documents;
 *   - search: every labelled query several times through GET /api/bots/:id/knowledge/search, p50/p99 latency;
 *   - retrieval quality on the labelled set: hit rate at 5 (a relevant document among the first five distinct
 *     documents), hybrid (dense + sparse, RRF) against dense only.
 */

interface Labelled {
  documents: Array<{ id: string; title: string; text: string }>;
  queries: Array<{ query: string; relevant: string[] }>;
}

const DEFAULT_PAGES = 100;
const SEARCH_ROUNDS = 5;

async function generatedPdf(pages: number): Promise<Buffer> {
  const pdf = await PDFDocument.create();
  const font = await pdf.embedFont(StandardFonts.Helvetica);
  for (let page = 1; page <= pages; page += 1) {
    const sheet = pdf.addPage([595, 842]);
    sheet.drawText(`Chapter ${page}: operating procedures`, { x: 50, y: 790, size: 16, font });
    for (let line = 0; line < 40; line += 1) {
      sheet.drawText(`Procedure ${page}.${line}: check the valve ${(page * 41 + line) % 97} and record pressure reading ${page * line} in the log.`, { x: 50, y: 760 - line * 17, size: 10, font });
    }
  }
  return Buffer.from(await pdf.save());
}

async function waitIndexed(api: TestApi, token: string, botId: string, ids: readonly string[]): Promise<void> {
  await waitFor(async () => {
    const listed = await restOk('GET', `${api.url}/api/bots/${botId}/knowledge`, 200, { token });
    const documents = listed.documents as Array<{ id: string; status: string; reason: string | null }>;
    const mine = documents.filter((document) => ids.includes(document.id));
    const failed = mine.find((document) => document.status === 'failed');
    if (failed !== undefined) throw new Error(`a document failed: ${failed.reason ?? ''}`);
    return mine.length === ids.length && mine.every((document) => document.status === 'indexed');
  }, 600_000, 100);
}

function hitRateAt5(results: string[][], labelled: Labelled, idOf: Map<string, string>): number {
  let hits = 0;
  labelled.queries.forEach((query, index) => {
    const relevant = new Set(query.relevant.map((id) => idOf.get(id)));
    if ((results[index] ?? []).slice(0, 5).some((id) => relevant.has(id))) hits += 1;
  });
  return Math.round((hits / labelled.queries.length) * 1000) / 1000;
}

const distinct = (ids: string[]): string[] => [...new Set(ids)];

export async function run(args: string[]): Promise<number> {
  const [flag, value] = args;
  const pages = flag === '--pages' && value !== undefined && /^\d+$/.test(value) ? Number(value) : flag === undefined ? DEFAULT_PAGES : NaN;
  if (!Number.isInteger(pages) || pages < 1 || pages > 5000) {
    process.stderr.write(`usage: npm run bench -- knowledge [--pages N (default ${DEFAULT_PAGES})]\n`);
    return 2;
  }
  const labelled = JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'knowledge', 'labelled.json'), 'utf8')) as Labelled;
  let database: TestDatabase | undefined;
  let qdrant: QdrantForTests | undefined;
  let api: TestApi | undefined;
  const workers: RunningWorkers[] = [];
  try {
    qdrant = await qdrantForTests();
    database = await createTestDatabase();
    const prefix = uniqueQueuePrefix();
    const config = apiTestConfig(database.url, {
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      BOTSERVER_FEATURES: 'vectordb',
      QDRANT_URL: qdrant.url,
      ...(qdrant.apiKey === undefined ? {} : { QDRANT_API_KEY: qdrant.apiKey }),
      ...(process.env.EMBEDDINGS_BASE_URL === undefined ? {} : { EMBEDDINGS_BASE_URL: process.env.EMBEDDINGS_BASE_URL }),
    });
    configureProcessLogging(config, 'botserver-bench');
    api = await startTestApi(config, prefix);
    for (const family of ['files', 'embed'] as const) workers.push(await startWorkers(config, family, { queuePrefix: prefix }));
    const admin = await signedInUser(api, 'admin', `bench-knowledge-${randomBytes(3).toString('hex')}`);
    const botId = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'Bench knowledge' } })).id);

    const pdf = await generatedPdf(pages);
    const upload = await uploadFile(api.url, admin.token, 'manual.pdf', pdf);
    const fileId = String(json(upload).id);
    await waitForStored(api.url, admin.token, fileId, 300_000);
    const pdfStarted = performance.now();
    const pdfDocument = String((await restOk('POST', `${api.url}/api/bots/${botId}/knowledge`, 202, { token: admin.token, body: { title: 'Manual', fileId } })).id);
    await waitIndexed(api, admin.token, botId, [pdfDocument]);
    const pdfSeconds = (performance.now() - pdfStarted) / 1000;

    // The labelled set, in a bot of its own so the PDF does not compete in the quality figures.
    const labelledBot = String((await restOk('POST', `${api.url}/api/bots`, 201, { token: admin.token, body: { name: 'Labelled' } })).id);
    const idOf = new Map<string, string>();
    const textStarted = performance.now();
    for (const document of labelled.documents) {
      const created = await restOk('POST', `${api.url}/api/bots/${labelledBot}/knowledge`, 202, { token: admin.token, body: { title: document.title, text: document.text } });
      idOf.set(document.id, String(created.id));
    }
    await waitIndexed(api, admin.token, labelledBot, [...idOf.values()]);
    const textSeconds = (performance.now() - textStarted) / 1000;

    const latencies: number[] = [];
    const hybrid: string[][] = [];
    for (let round = 0; round < SEARCH_ROUNDS; round += 1) {
      for (const [index, query] of labelled.queries.entries()) {
        const started = performance.now();
        const answer = await restOk('GET', `${api.url}/api/bots/${labelledBot}/knowledge/search?q=${encodeURIComponent(query.query)}&limit=20`, 200, { token: admin.token });
        latencies.push(performance.now() - started);
        if (round === 0) hybrid[index] = distinct((answer.results as Array<{ documentId: string }>).map((result) => result.documentId));
      }
    }
    const embedder = await createEmbedder(config);
    const index = createKnowledgeIndex({ url: qdrant.url, apiKey: qdrant.apiKey });
    const denseOnly: string[][] = [];
    for (const query of labelled.queries) {
      const passages = await retrievePassages(embedder, index, api.kernel.keys.columnRing, { tenantId: admin.tenantId, botId: labelledBot, text: query.query, limit: 20, denseOnly: true });
      denseOnly.push(distinct(passages.map((passage) => passage.documentId)));
    }

    const result = {
      bench: 'knowledge',
      node: process.version,
      cpus: availableParallelism(),
      embedder: embedder.model,
      qdrant: qdrant.standIn === undefined ? 'real' : 'stand-in',
      pdfPages: pages,
      pdfSeconds: round1(pdfSeconds),
      pdfPagesPerSecond: round1(pages / pdfSeconds),
      labelledDocuments: labelled.documents.length,
      labelledDocumentsPerSecond: round1(labelled.documents.length / textSeconds),
      searches: latencies.length,
      searchP50Ms: round1(percentile(latencies, 50)),
      searchP99Ms: round1(percentile(latencies, 99)),
      queries: labelled.queries.length,
      hitRateAt5Hybrid: hitRateAt5(hybrid, labelled, idOf),
      hitRateAt5DenseOnly: hitRateAt5(denseOnly, labelled, idOf),
    };
    process.stdout.write(
      [
        `knowledge benchmark  node ${process.version}, ${availableParallelism()} CPU(s); Qdrant ${result.qdrant}, embedder ${result.embedder}; API, files and embed workers in this process`,
        `ingestion  PDF ${pages} pages indexed in ${result.pdfSeconds} s = ${result.pdfPagesPerSecond} pages/s;  ${result.labelledDocuments} text documents at ${result.labelledDocumentsPerSecond} documents/s`,
        `search     ${result.searches} searches through the API  p50 ${result.searchP50Ms} ms  p99 ${result.searchP99Ms} ms`,
        `quality    hit rate at 5 on ${result.queries} labelled queries: hybrid ${result.hitRateAt5Hybrid}, dense only ${result.hitRateAt5DenseOnly}`,
        JSON.stringify(result),
        '',
      ].join('\n'),
    );
    return 0;
  } finally {
    await signOutAll();
    for (const running of workers) await running.shutdown();
    if (api !== undefined) {
      for (const name of ['embed', 'file-encrypt', 'audit'] as const) await api.kernel.queues.queue(name).obliterate({ force: true }).catch(() => undefined);
      await api.stop();
    }
    await database?.destroy();
    await qdrant?.stop();
  }
}
