import { Router } from 'express';
import type { Config } from '../../shared/config/index.js';
import { buildOpenApiDocument } from './document.js';

export const OPENAPI_PATH = '/api/openapi.json';

/**
 * `GET /api/openapi.json`: public, built once at start (a broken schema fails the start, not a request), cached for
 * five minutes and revalidated by ETag.
 */
export function openApiRoutes(config: Config): Router {
  const body = JSON.stringify(buildOpenApiDocument(config));
  const router = Router();
  router.get(OPENAPI_PATH, (_req, res) => {
    res.setHeader('Cache-Control', 'public, max-age=300');
    res.type('application/json').send(body);
  });
  return router;
}
