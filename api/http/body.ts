import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { AppError } from '../../shared/errors.js';

/** Media types read as JSON. */
export const JSON_TYPES = ['application/json', 'application/*+json'];
const MULTIPART = 'multipart/form-data';

/** Most JSON bodies are a few fields: 64 KiB is plenty (a 16 000-character message included). */
export const JSON_BODY_LIMIT = 64 * 1024;
/**
 * A bot's definition may carry 100 rules of up to 200 + 4000 characters, a system prompt and a greeting:
 * up to about 1.3 MB of UTF-8, so these two routes alone read up to 2 MiB.
 */
export const BOT_BODY_LIMIT = 2 * 1024 * 1024;

/**
 * Routes with a larger JSON limit than JSON_BODY_LIMIT, matched like Express matches them (case-insensitive, an
 * optional trailing slash). A plain list rather than router routes, so the app's route table lists real routes only.
 */
export const LARGE_BODY_ROUTES: ReadonlyArray<{ method: string; path: RegExp; limit: number }> = [
  { method: 'POST', path: /^\/api\/bots\/?$/i, limit: BOT_BODY_LIMIT },
  { method: 'PATCH', path: /^\/api\/bots\/[^/]+\/?$/i, limit: BOT_BODY_LIMIT },
];

/**
 * Routes that take a multipart upload (CONTRACT §3 `POST /api/files`, field `file`); they read the stream themselves
 * and enforce BOTSERVER_MAX_UPLOAD_SIZE. Anywhere else a multipart body is refused like any non-JSON body.
 */
export const UPLOAD_ROUTES: ReadonlyArray<{ method: string; path: RegExp }> = [{ method: 'POST', path: /^\/api\/files\/?$/i }];

const matches = (routes: ReadonlyArray<{ method: string; path: RegExp }>, req: Request): boolean => routes.some((route) => route.method === req.method && route.path.test(req.path));

function jsonParser(limit: number): RequestHandler {
  return express.json({ limit, strict: true, type: JSON_TYPES });
}

function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** A body that is not JSON (nor, on an upload route, multipart) is refused before any handler sees the request: 415. */
function refuseOtherMediaTypes(req: Request, _res: Response, next: NextFunction): void {
  if (!hasBody(req)) return next();
  const accepted = matches(UPLOAD_ROUTES, req) ? [...JSON_TYPES, MULTIPART] : JSON_TYPES;
  if (req.is(accepted) !== false) return next();
  next(new AppError('unsupported_media_type', 'The request body must be JSON (Content-Type: application/json)', { status: 415 }));
}

/**
 * Body reading for the whole API: JSON with a per-route size limit (413 `payload_too_large` beyond it, 400
 * `invalid_json` when malformed, 415 for an unsupported charset or encoding), then 415 `unsupported_media_type`
 * for a body of any other type.
 */
export function bodyParsers(): RequestHandler[] {
  const standard = jsonParser(JSON_BODY_LIMIT);
  const large = LARGE_BODY_ROUTES.map((route) => ({ ...route, parser: jsonParser(route.limit) }));
  const readJson: RequestHandler = (req, res, next) => {
    const parser = large.find((route) => matches([route], req))?.parser ?? standard;
    parser(req, res, next);
  };
  return [readJson, refuseOtherMediaTypes];
}
