import { Router } from 'express';
import { withTenant } from '../../shared/db/index.js';
import { ForbiddenError } from '../../shared/errors.js';
import { FileIntegrityError, insertFile, toFileInfo } from '../../shared/files/index.js';
import { log } from '../../shared/log/index.js';
import { actorOf, callerOf, tenantOf } from '../chat/access.js';
import type { ApiContext } from '../context.js';
import { noFieldsSchema, parseInput } from '../http/validate.js';
import { withFile } from './access.js';
import { sendContent } from './download.js';
import { receiveUpload } from './upload.js';

/** CONTRACT §3 files: upload (202, encrypted by the `files` worker), metadata, decrypted content, delete. */
export function fileRoutes(ctx: ApiContext): Router {
  const router = Router();
  const ring = () => ctx.kernel.keys.columnRing;

  router.post('/api/files', async (req, res) => {
    const caller = callerOf(req);
    if (caller.kind !== 'user') throw new ForbiddenError('forbidden', 'Guests cannot upload files');
    const tenantId = caller.auth.tenantId;
    const upload = await receiveUpload(ctx, req, res, tenantId);
    try {
      await withTenant(ctx.kernel.db, tenantId, (trx) =>
        insertFile(trx, ring(), {
          id: upload.fileId,
          tenantId,
          ownerId: caller.auth.userId,
          name: upload.name,
          contentType: upload.contentType,
          size: upload.size,
          source: 'upload',
          wrappedKey: upload.staged.wrappedKey,
          chunkSize: upload.staged.chunkSize,
          sha256: upload.staged.sha256,
        }),
      );
    } catch (error) {
      await ctx.staging.remove(tenantId, upload.fileId);
      throw error;
    }
    // A staged file whose job could not be added now is found and enqueued by the files worker's sweep.
    await ctx.kernel.queues.enqueue('file-encrypt', 'encrypt', { tenantId, fileId: upload.fileId }, { jobId: upload.fileId });
    await ctx.audit(req, { type: 'data.write', outcome: 'success', target: `file:${upload.fileId}`, details: { size: upload.size, type: upload.contentType } });
    res.status(202).json({ id: upload.fileId, status: 'pending' });
  });

  router.get('/api/files/:id', async (req, res) => {
    parseInput(noFieldsSchema, req.query);
    const info = await withFile(ctx, callerOf(req), req.params.id, async (_trx, file) => Promise.resolve(toFileInfo(ring(), file)));
    res.json(info);
  });

  router.get('/api/files/:id/content', async (req, res) => {
    parseInput(noFieldsSchema, req.query);
    const caller = callerOf(req);
    const { file, name } = await withFile(ctx, caller, req.params.id, async (_trx, row) => Promise.resolve({ file: row, name: toFileInfo(ring(), row).name }));
    try {
      await sendContent(ctx, req, res, file, name);
    } catch (error) {
      if (error instanceof FileIntegrityError) {
        log.error('stored file failed its integrity check', { fileId: file.id, error: error.message });
        await ctx.kernel.audit
          .record({ type: 'security.violation', outcome: 'denied', tenantId: tenantOf(caller), actor: actorOf(caller), target: `file:${file.id}`, ip: req.ip ?? null, requestId: req.requestId, details: { reason: 'file_integrity' } })
          .catch(() => undefined);
      }
      throw error;
    }
    await ctx.audit(req, { type: 'data.read', outcome: 'success', target: `file:${file.id}`, details: {} });
  });

  router.delete('/api/files/:id', async (req, res) => {
    parseInput(noFieldsSchema, req.body);
    const file = await withFile(ctx, callerOf(req), req.params.id, async (trx, row) => {
      await trx('files').where({ id: row.id }).delete();
      return row;
    });
    await ctx.staging.remove(file.tenant_id, file.id);
    // The row held the only wrapped copy of the file's data key: once it is gone the object cannot be decrypted, even
    // where deleting it (every version) fails; that failure is logged for an operator to clean up.
    await ctx.storage.delete(file.storage_key).catch((error: unknown) => {
      log.error('stored object could not be deleted', { fileId: file.id, error: error instanceof Error ? error.message : String(error) });
    });
    await ctx.audit(req, { type: 'data.erase', outcome: 'success', target: `file:${file.id}`, details: {} });
    res.status(204).end();
  });

  return router;
}
