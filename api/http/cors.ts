import cors, { type CorsOptions, type CorsOptionsDelegate } from 'cors';
import type { NextFunction, Request, RequestHandler, Response } from 'express';

const ALLOWED_ORIGIN_OPTIONS: CorsOptions = { origin: true, credentials: true, maxAge: 600 };

/**
 * CORS for the whitelist only: a listed origin gets exactly itself in Access-Control-Allow-Origin, with credentials;
 * any other origin (or none) gets no CORS header at all, not even Allow-Credentials or Allow-Methods on a
 * preflight. No wildcard is ever sent. Every answer varies by Origin, so caches keep them apart.
 */
export function allowedOriginsCors(allowedOrigins: readonly string[]): RequestHandler {
  const allowed = new Set(allowedOrigins);
  const withCors = cors(ALLOWED_ORIGIN_OPTIONS);
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.get('origin');
    if (origin !== undefined && allowed.has(origin)) {
      withCors(req, res, next);
      return;
    }
    res.vary('Origin');
    next();
  };
}

/** The same rule as `cors` options for Socket.IO's engine (which calls the cors package itself). */
export function allowedOriginsCorsOptions(allowedOrigins: readonly string[]): CorsOptionsDelegate {
  const allowed = new Set(allowedOrigins);
  return (req, callback) => {
    const origin = req.headers.origin;
    callback(null, origin !== undefined && allowed.has(origin) ? ALLOWED_ORIGIN_OPTIONS : { origin: false });
  };
}
