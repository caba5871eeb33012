import { UnrecoverableError, type Job } from 'bullmq';
import { lazyEmbedder } from '../adapters/embeddings/index.js';
import type { Embedder } from '../adapters/embeddings/types.js';
import { createKnowledgeIndex } from '../adapters/qdrant/index.js';
import type { KnowledgeIndex, KnowledgePoint } from '../adapters/qdrant/types.js';
import { createStorage, objectSource, type ObjectStorage } from '../adapters/storage/index.js';
import { sealString } from '../shared/crypto/index.js';
import { withTenant } from '../shared/db/index.js';
import { AppError } from '../shared/errors.js';
import { findFile, OpenedContent, type FileRow } from '../shared/files/index.js';
import type { Kernel } from '../shared/kernel.js';
import { passageAad } from '../shared/knowledge/aad.js';
import { chunkSections } from '../shared/knowledge/chunk.js';
import { documentText, type DocumentRow } from '../shared/knowledge/documents.js';
import { extractSections } from '../shared/knowledge/extract.js';
import { extractInThread } from '../shared/knowledge/extract-thread.js';
import { pointId } from '../shared/knowledge/points.js';
import { sparseVector } from '../shared/knowledge/sparse.js';
import type { TextSection } from '../shared/knowledge/types.js';
import { log } from '../shared/log/index.js';
import type { JobData } from '../shared/queue/index.js';

/** Passages embedded per call to the embeddings endpoint. */
const EMBED_BATCH = 32;
/** A file still being encrypted is waited for this long between tries. */
const FILE_NOT_READY_DELAY_MS = 2000;

/** Why a document failed, in words an operator can act on (never its content). */
function failureReason(error: unknown): string {
  if (error instanceof AppError && error.expose) return `${error.code}: ${error.message}`.slice(0, 300);
  if (error instanceof UnrecoverableError) return error.message.slice(0, 300);
  return 'indexing_failed: the document could not be indexed (see the worker log)';
}

function isLastAttempt(job: Job, error: unknown): boolean {
  if (error instanceof UnrecoverableError) return true;
  return job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
}

async function readFileBytes(kernel: Kernel, storage: ObjectStorage, file: FileRow): Promise<Buffer> {
  const size = Number(file.size);
  const content = await OpenedContent.open(kernel.keys.payloadRing, file, objectSource(storage, file.storage_key));
  try {
    if (size === 0) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for await (const piece of content.range(0, size - 1)) parts.push(piece);
    return Buffer.concat(parts, size);
  } finally {
    content.close();
  }
}

interface Loaded {
  document: DocumentRow;
  sections: TextSection[];
}

/** The document's text as sections: given text (read as Markdown, so headings make sections) or its stored file. */
async function loadDocument(kernel: Kernel, storage: ObjectStorage, data: JobData<'embed'>): Promise<Loaded | undefined> {
  const found = await withTenant(kernel.db, data.tenantId, async (trx) => {
    const document = await trx('knowledge_documents').where({ id: data.documentId }).first<DocumentRow | undefined>();
    const file = document?.file_id === null || document === undefined ? undefined : await findFile(trx, document.file_id);
    return document === undefined ? undefined : { document, file };
  });
  if (found === undefined) return undefined;
  const { document, file } = found;
  const text = documentText(kernel.keys.columnRing, document);
  if (text !== undefined) return { document, sections: await extractSections(Buffer.from(text, 'utf8'), 'text/markdown') };
  if (file === undefined) throw new UnrecoverableError('file_missing: the document\'s file was deleted');
  if (file.status === 'failed') throw new UnrecoverableError('file_failed: the document\'s file could not be stored');
  if (file.status === 'pending') throw new AppError('file_not_ready', 'the file is still being stored', { status: 409 });
  // In a thread with a capped heap: a huge or hostile file fails as document_too_large, the worker goes on.
  return { document, sections: await extractInThread(await readFileBytes(kernel, storage, file), file.content_type) };
}

async function embedChunks(embedder: Embedder, texts: string[]): Promise<number[][]> {
  const vectors: number[][] = [];
  for (let start = 0; start < texts.length; start += EMBED_BATCH) vectors.push(...(await embedder.embed(texts.slice(start, start + EMBED_BATCH))));
  return vectors;
}

/**
 * The embed family: extracts a document, chunks it by sections and paragraphs, embeds every chunk (dense) and
 * weighs its terms (sparse), and replaces the document's points in the collection of the embedding model. The
 * passages are sealed in the payload. A document deleted meanwhile has its points removed again.
 */
export async function indexDocument(kernel: Kernel, storage: ObjectStorage, embedder: Embedder, index: KnowledgeIndex, data: JobData<'embed'>): Promise<void> {
  const loaded = await loadDocument(kernel, storage, data);
  if (loaded === undefined) return;
  const chunks = chunkSections(loaded.sections);
  if (chunks.length === 0) throw new UnrecoverableError('empty_document: no text could be extracted');
  const dense = await embedChunks(embedder, chunks.map((chunk) => chunk.text));
  const collection = await index.ensureCollection(embedder.model, embedder.dimension);
  const points: KnowledgePoint[] = chunks.map((chunk, position) => {
    const id = pointId(data.documentId, chunk.index);
    return {
      id,
      dense: dense[position] ?? [],
      sparse: sparseVector(chunk.text),
      payload: {
        tenant_id: data.tenantId,
        bot_id: loaded.document.bot_id,
        document_id: data.documentId,
        chunk_index: chunk.index,
        position: chunk.position,
        text_sealed: sealString(kernel.keys.columnRing, chunk.text, passageAad(id)),
      },
    };
  });
  await index.deleteDocument(collection, data.tenantId, data.documentId);
  await index.upsert(collection, points);
  const updated = await withTenant(kernel.db, data.tenantId, (trx) =>
    trx('knowledge_documents')
      .where({ id: data.documentId })
      .update({ status: 'indexed', chunk_count: points.length, collection, failure_reason: null, updated_at: trx.fn.now() }),
  );
  if (updated === 0) await index.deleteDocument(collection, data.tenantId, data.documentId);
}

async function markFailed(kernel: Kernel, data: JobData<'embed'>, reason: string): Promise<void> {
  await withTenant(kernel.db, data.tenantId, (trx) =>
    trx('knowledge_documents').where({ id: data.documentId }).update({ status: 'failed', failure_reason: reason, updated_at: trx.fn.now() }),
  );
}

export function startEmbedWorker(kernel: Kernel): void {
  const qdrant = kernel.config.qdrant;
  if (qdrant === undefined) throw new AppError('invalid_config', 'The embed worker needs QDRANT_URL (feature vectordb)', { status: 500 });
  const storage = createStorage(kernel.config);
  const index = createKnowledgeIndex({ url: qdrant.url, apiKey: qdrant.apiKey });
  const loadEmbedder = lazyEmbedder(kernel.config);
  kernel.queues.worker(
    'embed',
    async (data, job) => {
      try {
        await indexDocument(kernel, storage, await loadEmbedder(), index, data);
      } catch (error) {
        if (error instanceof AppError && error.code === 'file_not_ready' && !isLastAttempt(job, error)) {
          await new Promise((resolve) => setTimeout(resolve, FILE_NOT_READY_DELAY_MS));
          throw error;
        }
        const unrecoverable = error instanceof UnrecoverableError || (error instanceof AppError && error.expose && error.status < 500);
        const final = unrecoverable || isLastAttempt(job, error);
        log.warn('document indexing failed', { jobId: job.id, attempt: job.attemptsMade + 1, final, error: error instanceof Error ? error.message : String(error) });
        if (final) await markFailed(kernel, data, failureReason(error));
        throw unrecoverable && !(error instanceof UnrecoverableError) ? new UnrecoverableError(failureReason(error)) : error;
      }
    },
    // Extraction is CPU and memory heavy (a large PDF): two documents at a time per process.
    { concurrency: 2 },
  );
  kernel.onClose(() => storage.close());
}
