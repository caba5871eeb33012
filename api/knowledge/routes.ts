import { randomUUID } from 'node:crypto';
import { Router, type Request } from 'express';
import type { Knex } from 'knex';
import { isUuid, withTenant } from '../../shared/db/index.js';
import { AppError, NotFoundError } from '../../shared/errors.js';
import { documentTitles, insertDocument, KNOWLEDGE_TYPES, toDocumentInfo, type DocumentRow } from '../../shared/knowledge/documents.js';
import { retrievePassages, titledPassages } from '../../shared/knowledge/retrieval.js';
import type { Caller } from '../auth/authenticate.js';
import { hasRole, requireRole } from '../auth/rbac.js';
import { callerOf, tenantOf } from '../chat/access.js';
import type { ApiContext } from '../context.js';
import { withFile } from '../files/access.js';
import { noFieldsSchema, parseInput } from '../http/validate.js';
import { newDocumentSchema, searchQuerySchema } from './schema.js';
import { requireKnowledge } from './service.js';

function idParam(req: Request, name: 'id' | 'docId', what: string): string {
  const id = req.params[name];
  if (!isUuid(id)) throw new NotFoundError(`No such ${what}`);
  return id;
}

async function assertBot(trx: Knex.Transaction, botId: string): Promise<void> {
  const bot = await trx('bots').where({ id: botId }).whereNull('deleted_at').first<{ id: string } | undefined>('id');
  if (bot === undefined) throw new NotFoundError('No such bot');
}

/** Staff of the tenant search any bot; a user or guest searches a bot whose conversation they take part in. */
async function maySearch(trx: Knex.Transaction, caller: Caller, botId: string): Promise<boolean> {
  if (caller.kind === 'guest') return (await trx('conversations').where({ id: caller.guest.cid, bot_id: botId, guest: true }).first('id')) !== undefined;
  if (hasRole(caller.auth.roles, ['admin', 'operator'])) return true;
  return (await trx('conversations').where({ bot_id: botId, user_id: caller.auth.userId }).first('id')) !== undefined;
}

/** CONTRACT §3 knowledge: documents of a bot (text or a stored file), their status, deletion, hybrid search. */
export function knowledgeRoutes(ctx: ApiContext): Router {
  const router = Router();
  const staff = requireRole(ctx, 'admin', 'operator');
  const ring = () => ctx.kernel.keys.columnRing;

  router.post('/api/bots/:id/knowledge', staff, async (req, res) => {
    const input = parseInput(newDocumentSchema, req.body);
    requireKnowledge(ctx.knowledge);
    const caller = callerOf(req);
    if (caller.kind !== 'user') throw new NotFoundError('No such bot');
    const botId = idParam(req, 'id', 'bot');
    let contentType = 'text/markdown';
    if (input.fileId !== undefined) {
      const file = await withFile(ctx, caller, input.fileId, async (_trx, row) => Promise.resolve(row));
      if (!KNOWLEDGE_TYPES.includes(file.content_type)) {
        throw new AppError('unsupported_document', `Documents of type ${file.content_type} cannot be indexed (text, Markdown, HTML, PDF, docx)`, { status: 422, field: 'fileId' });
      }
      contentType = file.content_type;
    }
    const tenantId = caller.auth.tenantId;
    const document = await withTenant(ctx.kernel.db, tenantId, async (trx) => {
      await assertBot(trx, botId);
      return insertDocument(trx, ring(), {
        id: randomUUID(),
        tenantId,
        botId,
        ownerId: caller.auth.userId,
        title: input.title,
        contentType,
        ...(input.text === undefined ? {} : { text: input.text }),
        ...(input.fileId === undefined ? {} : { fileId: input.fileId }),
      });
    });
    await ctx.kernel.queues.enqueue('embed', 'index', { tenantId, documentId: document.id }, { jobId: document.id });
    await ctx.audit(req, { type: 'data.write', outcome: 'success', target: `knowledge:${document.id}`, details: { botId, via: input.fileId === undefined ? 'text' : 'file' } });
    res.status(202).json({ id: document.id, status: 'pending' });
  });

  router.get('/api/bots/:id/knowledge', staff, async (req, res) => {
    parseInput(noFieldsSchema, req.query);
    requireKnowledge(ctx.knowledge);
    const botId = idParam(req, 'id', 'bot');
    const documents = await withTenant(ctx.kernel.db, tenantOf(callerOf(req)), async (trx) => {
      await assertBot(trx, botId);
      return trx('knowledge_documents').where({ bot_id: botId }).orderBy('created_at', 'desc').select<DocumentRow[]>('*');
    });
    res.json({ documents: documents.map((row) => toDocumentInfo(ring(), row)) });
  });

  router.delete('/api/bots/:id/knowledge/:docId', staff, async (req, res) => {
    parseInput(noFieldsSchema, req.body);
    const services = requireKnowledge(ctx.knowledge);
    const botId = idParam(req, 'id', 'bot');
    const documentId = idParam(req, 'docId', 'document');
    const tenantId = tenantOf(callerOf(req));
    // Its points leave Qdrant first: when Qdrant does not answer the row stays and the delete can be repeated.
    await withTenant(ctx.kernel.db, tenantId, async (trx) => {
      const document = await trx('knowledge_documents').where({ id: documentId, bot_id: botId }).first<DocumentRow | undefined>();
      if (document === undefined) throw new NotFoundError('No such document');
      if (document.collection !== null) await services.index.deleteDocument(document.collection, tenantId, documentId);
      await trx('knowledge_documents').where({ id: documentId }).delete();
    });
    await ctx.audit(req, { type: 'data.erase', outcome: 'success', target: `knowledge:${documentId}`, details: { botId } });
    res.status(204).end();
  });

  router.get('/api/bots/:id/knowledge/search', async (req, res) => {
    const query = parseInput(searchQuerySchema, req.query);
    const services = requireKnowledge(ctx.knowledge);
    const caller = callerOf(req);
    const botId = idParam(req, 'id', 'bot');
    const tenantId = tenantOf(caller);
    await withTenant(ctx.kernel.db, tenantId, async (trx) => {
      await assertBot(trx, botId);
      if (!(await maySearch(trx, caller, botId))) throw new NotFoundError('No such bot');
    });
    const passages = await retrievePassages(await services.embedder(), services.index, ring(), { tenantId, botId, text: query.q, limit: query.limit ?? 5 });
    const titles = await withTenant(ctx.kernel.db, tenantId, (trx) => documentTitles(trx, ring(), passages.map((passage) => passage.documentId)));
    const results = titledPassages(passages, titles).map(({ documentId, title, position, text, score }) => ({ documentId, title, position, text, score }));
    res.json({ results });
  });

  return router;
}
